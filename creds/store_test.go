package creds

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// counterCache stands in for MSAL's cache: a JSON object with a counter.
type counterCache struct{ N int }

func (c *counterCache) Marshal() ([]byte, error) { return json.Marshal(c) }
func (c *counterCache) Unmarshal(b []byte) error {
	*c = counterCache{}
	return json.Unmarshal(b, c)
}

// TestTokenCacheNoLostUpdates runs many read-modify-write cycles on one
// profile at once, each as MSAL does inside a lock scope: none is lost and
// the file is always valid JSON, 0600.
func TestTokenCacheNoLostUpdates(t *testing.T) {
	st := NewStore(t.TempDir(), "")
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc := st.TokenCache("p") // a separate accessor, like another process
			for r := 0; r < rounds; r++ {
				ctx, release := withLockScope(context.Background())
				var c counterCache
				if err := tc.Replace(ctx, &c, cache.ReplaceHints{}); err != nil {
					t.Error(err)
				}
				c.N++
				if err := tc.Export(ctx, &c, cache.ExportHints{}); err != nil {
					t.Error(err)
				}
				release()
			}
		}()
	}
	wg.Wait()
	var c counterCache
	if err := st.TokenCache("p").Replace(context.Background(), &c, cache.ReplaceHints{}); err != nil {
		t.Fatal(err)
	}
	if c.N != workers*rounds {
		t.Errorf("counter = %d, want %d (lost updates)", c.N, workers*rounds)
	}
	fi, err := os.Stat(st.TokenPath("p"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(st.ProfileDir("p"))
	for _, e := range ents {
		if e.Name() != tokensFile && e.Name() != lockFile {
			t.Errorf("stray file %s", e.Name())
		}
	}
}

func TestStoreProfiles(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	st := NewStore("", home)
	if st.DefaultFile != filepath.Join(home, ".prescient.json") || st.Dir != filepath.Join(home, ".prescient") {
		t.Errorf("layout %+v", st)
	}
	if p, err := st.DefaultProfile(); p != "" || err != nil {
		t.Errorf("default profile of an empty store: %q %v", p, err)
	}
	if err := st.SaveProfile(ctx, "a", map[string]string{VarClientID: "c"}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st.TokenPath("a"), `{"x":1}`)
	if err := st.CopyProfile(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if !st.HasSession("b") {
		t.Error("copy lost the session")
	}
	if err := st.SetDefaultProfile(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.DefaultProfile(); p != "b" {
		t.Errorf("default %q", p)
	}
	ps, _ := st.Profiles()
	if len(ps) != 2 {
		t.Errorf("profiles %v", ps)
	}
	if err := st.Logout(ctx, "b"); err != nil || st.HasSession("b") {
		t.Errorf("logout: %v, session %v", err, st.HasSession("b"))
	}
	for _, bad := range []string{"../x", "", ".hidden", "a/b"} {
		if ValidProfileName(bad) == nil {
			t.Errorf("profile name %q accepted", bad)
		}
	}
	for _, f := range []string{st.DefaultFile, st.settingsPath("a")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
}
