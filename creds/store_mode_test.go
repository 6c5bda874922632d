package creds

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// Everything the session store writes (profiles, the token cache, locks,
// the default-profile file) is owner-only whatever the umask (here 0, so
// the modes come from the code): directories 0700, files 0600.
func TestStoreOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	home := t.TempDir()
	st := NewStore("", home)
	ctx := context.Background()
	if err := st.SaveProfile(ctx, "a", map[string]string{VarClientID: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := st.TokenCache("a").Export(ctx, &counterCache{N: 1}, cache.ExportHints{}); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyProfile(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDefaultProfile(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(st.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		checkMode(t, p, d.IsDir())
		return nil
	})
	if err != nil || files < 5 { // 2 × (settings, tokens, lock) + the store's lock
		t.Fatalf("walk: %v, %d files", err, files)
	}
	checkMode(t, st.DefaultFile, false)
}

func checkMode(t *testing.T, p string, dir bool) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	want := fs.FileMode(0o600)
	if dir {
		want = 0o700
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", p, got, want)
	}
}

// A profile is copied only from a profile's name, never from a path.
func TestCopyProfileRefusesPaths(t *testing.T) {
	home := t.TempDir()
	st := NewStore("", home)
	outside := filepath.Join(home, "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyProfile(context.Background(), "../outside", "b"); err == nil {
		t.Error("copied from ../outside")
	}
	if _, err := os.Stat(filepath.Join(outside, lockFile)); err == nil {
		t.Error("a lock file was created outside the store")
	}
}

// A session duration beyond what STS's DurationSeconds (an int32) holds
// is a setting error, not a wrapped, negative duration.
func TestLoadSTSDurationBounds(t *testing.T) {
	dir := t.TempDir()
	for v, ok := range map[string]bool{"0": true, "3600": true, "2147483647": true, "2147483648": false, "99999999999999999": false, "-1": false} {
		s, err := Load(LoadOptions{Dir: dir, LookupEnv: envOf(map[string]string{VarEndpointURL: "https://api/", VarAPIKey: "k", VarSTSDuration: v}), Home: dir})
		if ok && (err != nil || s.STSDuration < 0) {
			t.Errorf("%s=%s: %v", VarSTSDuration, v, err)
		}
		if !ok && !errors.Is(err, ErrNotConfigured) {
			t.Errorf("%s=%s accepted", VarSTSDuration, v)
		}
	}
}
