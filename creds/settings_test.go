package creds

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestURLJoin(t *testing.T) {
	for _, tc := range []struct{ base, ref, want string }{
		{"https://api.example.com/", "stac", "https://api.example.com/stac"},
		{"https://api.example.com", "stac", "https://api.example.com/stac"},
		{"https://api.example.com/v1/", "stac", "https://api.example.com/v1/stac"},
		{"https://api.example.com/v1", "stac", "https://api.example.com/stac"}, // as Python's urljoin
		{"https://login.microsoftonline.com/", "tenant-1", "https://login.microsoftonline.com/tenant-1"},
		{"https://api.example.com/", "fileproxy/credentials", "https://api.example.com/fileproxy/credentials"},
	} {
		got, err := URLJoin(tc.base, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("URLJoin(%q, %q) = %q, %v; want %q", tc.base, tc.ref, got, err, tc.want)
		}
	}
}

func TestLoadPrecedenceAndSources(t *testing.T) {
	dir, store := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "config.env"), `# SDK config
PRESCIENT_ENDPOINT_URL="https://file.example.com/"
PRESCIENT_CLIENT_ID=file-client
export PRESCIENT_AUTH_URL=https://login.microsoftonline.com/ # trailing comment
PRESCIENT_TENANT_ID='file-tenant'
PRESCIENT_API_KEY=
`)
	s0 := NewStore(store, "")
	if err := s0.SaveProfile(t.Context(), "work", map[string]string{VarAWSRole: "arn:aws:iam::1:role/profile", VarClientID: "profile-client"}); err != nil {
		t.Fatal(err)
	}
	if err := s0.SetDefaultProfile(t.Context(), "work"); err != nil {
		t.Fatal(err)
	}
	s, err := Load(LoadOptions{Dir: dir, LookupEnv: envOf(map[string]string{
		VarClientID: "env-client", VarConfigDir: store, VarClientSecret: "very-secret-value-1234",
	})})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want, src string }{
		{VarClientID, s.ClientID, "env-client", "env"},
		{VarEndpointURL, s.EndpointURL, "https://file.example.com/", "file"},
		{VarAuthURL, s.AuthURL, "https://login.microsoftonline.com/", "file"},
		{VarTenantID, s.TenantID, "file-tenant", "file"},
		{VarAWSRole, s.AWSRole, "arn:aws:iam::1:role/profile", "profile"},
		{VarAuthProvider, s.AuthProvider, "microsoft", "default"},
		{VarProfile, s.Profile, "work", "default"},
	} {
		if tc.got != tc.want || s.Source(tc.name).Kind != tc.src {
			t.Errorf("%s = %q from %v; want %q from %s", tc.name, tc.got, s.Source(tc.name), tc.want, tc.src)
		}
	}
	if s.APIKey != "" || s.Mode() != ModeServicePrincipal {
		t.Errorf("empty PRESCIENT_API_KEY= must count as unset; mode %s", s.Mode())
	}
	if u, _ := s.STACURL(); u != "https://file.example.com/stac" {
		t.Errorf("STAC URL %q", u)
	}
	if a, _ := s.Authority(); a != "https://login.microsoftonline.com/file-tenant" {
		t.Errorf("authority %q", a)
	}
	for _, e := range s.Entries() {
		if strings.Contains(e.Value, "very-secret") {
			t.Errorf("%s shows the secret: %q", e.Name, e.Value)
		}
	}
	pv := s.ProfileValues()
	if _, ok := pv[VarClientSecret]; ok {
		t.Error("profile values include the client secret")
	}
	if pv[VarClientID] != "env-client" || pv[VarEndpointURL] == "" {
		t.Errorf("profile values %v", pv)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(LoadOptions{Dir: dir, EnvFile: filepath.Join(dir, "nope.env"), LookupEnv: envOf(nil), Home: dir})
	if !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), "nope.env") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing --env-file: %v", err)
	}

	s, err := Load(LoadOptions{Dir: dir, LookupEnv: envOf(map[string]string{VarEndpointURL: "https://api/", VarAuthURL: "https://login/"}), Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate()
	if !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("validate: %v", err)
	}
	for _, want := range []string{VarClientID, VarTenantID, "the environment", filepath.Join(dir, "config.env") + " (not found)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation message %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), VarAuthURL+",") {
		t.Errorf("auth URL was set but reported missing: %v", err)
	}

	// An API key needs only the endpoint.
	s, err = Load(LoadOptions{Dir: dir, LookupEnv: envOf(map[string]string{VarEndpointURL: "https://api/", VarAPIKey: "k"}), Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil || s.Mode() != ModeAPIKey {
		t.Errorf("api key mode: %v %s", err, s.Mode())
	}
	// Nothing configured: not an error, the tool falls back.
	s, err = Load(LoadOptions{Dir: dir, LookupEnv: envOf(nil), Home: dir})
	if err != nil || s.Configured() {
		t.Errorf("empty settings: configured=%v err=%v", s.Configured(), err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
