package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
)

// Store is the saved-session store, after the Planet CLI's model: a file
// naming the default profile and one directory per profile holding its MSAL
// token cache (tokens.json) and non-secret settings (settings.json). Files
// are created 0600 and replaced atomically; writers take an flock on the
// directory's .lock file.
type Store struct {
	// Dir holds one directory per profile.
	Dir string
	// DefaultFile names the default profile: {"default_profile": "name"}.
	DefaultFile string
}

const (
	tokensFile   = "tokens.json"
	googleFile   = "google.json" // the Google provider's refresh token
	settingsFile = "settings.json"
	lockFile     = ".lock"
)

// NewStore returns the store in configDir (then the default-profile file is
// configDir/prescient.json) or, when configDir is empty, ~/.prescient with
// ~/.prescient.json.
func NewStore(configDir, home string) *Store {
	if configDir != "" {
		return &Store{Dir: configDir, DefaultFile: filepath.Join(configDir, "prescient.json")}
	}
	return &Store{Dir: filepath.Join(home, ".prescient"), DefaultFile: filepath.Join(home, ".prescient.json")}
}

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// ValidProfileName rejects names that are not plain directory names.
func ValidProfileName(name string) error {
	if !profileNameRE.MatchString(name) {
		return fmt.Errorf("%w: profile name %q: use letters, digits, '.', '_' and '-'", ErrNotConfigured, name)
	}
	return nil
}

// ProfileDir is the directory of a profile.
func (s *Store) ProfileDir(profile string) string { return filepath.Join(s.Dir, profile) }

func (s *Store) settingsPath(profile string) string {
	return filepath.Join(s.ProfileDir(profile), settingsFile)
}

// TokenPath is the profile's MSAL token cache.
func (s *Store) TokenPath(profile string) string {
	return filepath.Join(s.ProfileDir(profile), tokensFile)
}

// GoogleTokenPath is the profile's Google session (PRESCIENT_AUTH_PROVIDER=google).
func (s *Store) GoogleTokenPath(profile string) string {
	return filepath.Join(s.ProfileDir(profile), googleFile)
}

func (s *Store) lockPath(profile string) string {
	return filepath.Join(s.ProfileDir(profile), lockFile)
}

// DefaultProfile returns the profile named in DefaultFile, or "" when none is.
func (s *Store) DefaultProfile() (string, error) {
	data, err := os.ReadFile(s.DefaultFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", s.DefaultFile, err)
	}
	var v struct {
		DefaultProfile string `json:"default_profile"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return "", fmt.Errorf("read %s: %w", s.DefaultFile, err)
	}
	return v.DefaultProfile, nil
}

// SetDefaultProfile records profile as the default.
func (s *Store) SetDefaultProfile(ctx context.Context, profile string) error {
	if err := ValidProfileName(profile); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(map[string]string{"default_profile": profile}, "", "  ")
	unlock, err := lockPath(ctx, filepath.Join(s.Dir, lockFile))
	if err != nil {
		return err
	}
	defer unlock()
	return writeFileAtomic(s.DefaultFile, append(data, '\n'))
}

// Profiles lists the profiles that have a directory.
func (s *Store) Profiles() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidProfileName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// LoadProfile returns a profile's saved settings by variable name (empty
// when it has none).
func (s *Store) LoadProfile(profile string) (map[string]string, error) {
	data, err := os.ReadFile(s.settingsPath(profile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read profile %q: %w", profile, err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read profile %q (%s): %w", profile, s.settingsPath(profile), err)
	}
	return m, nil
}

// SaveProfile replaces a profile's saved settings.
func (s *Store) SaveProfile(ctx context.Context, profile string, values map[string]string) error {
	if err := ValidProfileName(profile); err != nil {
		return err
	}
	data, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return err
	}
	unlock, err := lockPath(ctx, s.lockPath(profile))
	if err != nil {
		return err
	}
	defer unlock()
	return writeFileAtomic(s.settingsPath(profile), append(data, '\n'))
}

// HasSession reports whether the profile has a saved session (MSAL's
// token cache or a Google refresh token).
func (s *Store) HasSession(profile string) bool {
	for _, p := range []string{s.TokenPath(profile), s.GoogleTokenPath(profile)} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 2 {
			return true
		}
	}
	return false
}

// Logout forgets the profile's tokens; its settings stay.
func (s *Store) Logout(ctx context.Context, profile string) error {
	unlock, err := lockPath(ctx, s.lockPath(profile))
	if err != nil {
		return err
	}
	defer unlock()
	for _, p := range []string{s.TokenPath(profile), s.GoogleTokenPath(profile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// CopyProfile copies a profile's settings and session to another name.
func (s *Store) CopyProfile(ctx context.Context, from, to string) error {
	for _, name := range []string{from, to} {
		if err := ValidProfileName(name); err != nil {
			return err
		}
	}
	if _, err := os.Stat(s.ProfileDir(from)); err != nil {
		return fmt.Errorf("profile %q: %w", from, err)
	}
	if _, err := os.Stat(s.ProfileDir(to)); err == nil {
		return fmt.Errorf("profile %q already exists", to)
	}
	unlockFrom, err := lockPath(ctx, s.lockPath(from))
	if err != nil {
		return err
	}
	defer unlockFrom()
	unlockTo, err := lockPath(ctx, s.lockPath(to))
	if err != nil {
		return err
	}
	defer unlockTo()
	for _, name := range []string{settingsFile, tokensFile, googleFile} {
		data, err := os.ReadFile(filepath.Join(s.ProfileDir(from), name)) // #nosec G304 -- a file of a valid profile's directory in the store
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(s.ProfileDir(to), name), data); err != nil {
			return err
		}
	}
	return nil
}

// TokenCache is a profile's MSAL token cache on disk (cache.ExportReplace).
// Replace re-reads the file every time, so tokens written by another process
// (a login in another terminal) are seen at the next MSAL operation.
type TokenCache struct {
	path, lock string
}

var _ cache.ExportReplace = (*TokenCache)(nil)

// TokenCache returns the profile's token cache.
func (s *Store) TokenCache(profile string) *TokenCache {
	return &TokenCache{path: s.TokenPath(profile), lock: s.lockPath(profile)}
}

// Replace loads the file into MSAL's cache (an empty cache when there is no
// file, so a logout elsewhere is seen too).
func (c *TokenCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	release, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(data) == 0) {
		data, err = []byte("{}"), nil
	}
	if err != nil {
		return fmt.Errorf("read token cache %s: %w", c.path, err)
	}
	if err := u.Unmarshal(data); err != nil {
		return fmt.Errorf("token cache %s is damaged (run `prescientfs auth login`): %w", c.path, err)
	}
	return nil
}

// Export writes MSAL's cache to the file, atomically and 0600.
func (c *TokenCache) Export(ctx context.Context, m cache.Marshaler, _ cache.ExportHints) error {
	release, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, data)
}

// acquire takes the profile lock for one file operation, unless ctx carries
// a lock scope (see withLockScope), which then holds the lock from the first
// operation until the scope ends.
func (c *TokenCache) acquire(ctx context.Context) (func(), error) {
	if sc, ok := ctx.Value(lockScopeKey{}).(*lockScope); ok {
		return func() {}, sc.acquire(ctx, c.lock)
	}
	return lockPath(ctx, c.lock)
}

type lockScopeKey struct{}

// lockScope holds one file lock across several MSAL cache operations, so
// that a read (Replace), a network refresh and the write (Export) of one
// token operation are atomic with respect to other processes: without it
// two processes refreshing at once would each write back a cache missing
// the other's tokens.
type lockScope struct {
	unlock func() // nil until acquired
}

func withLockScope(ctx context.Context) (context.Context, func()) {
	sc := &lockScope{}
	return context.WithValue(ctx, lockScopeKey{}, sc), func() {
		if sc.unlock != nil {
			sc.unlock()
			sc.unlock = nil
		}
	}
}

func (sc *lockScope) acquire(ctx context.Context, path string) error {
	if sc.unlock != nil {
		return nil
	}
	unlock, err := lockPath(ctx, path)
	if err != nil {
		return err
	}
	sc.unlock = unlock
	return nil
}

// lockPath takes an exclusive flock on path (created 0600 with its
// directory), polling so ctx can end the wait.
func lockPath(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- the lock file of a valid profile, or of the store
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	delay := time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close() // only read; err is the error
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return func() { unlockFile(f); _ = f.Close() }, nil // closing unlocks in any case
		}
		select {
		case <-ctx.Done():
			_ = f.Close() // only read
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// writeFileAtomic replaces path with data: a temporary file created 0600
// in the same directory, synced, then renamed over path. Readers see the
// old or the new content, never a mix, and the file is never readable by
// others.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
