package creds

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParseDotenv: python-dotenv's reading of the lines users write.
func TestParseDotenv(t *testing.T) {
	env := envOf(map[string]string{"HOME": "/home/ada", "KEY_FROM_ENV": "from-env", "SHADOWED": "env"})
	f := parseDotenv(`# comment
PLAIN=value
export EXPORTED=yes
SPACED = padded value   # a comment
HASH=a#b
SQ='single ${HOME} \n'
DQ="line1\nline2 \"q\" ${HOME}"
MULTI="first
second"
SHADOWED=file
FROM_FILE=${SHADOWED}/x
FROM_ENV=${KEY_FROM_ENV}
DEFAULTED=${NOPE:-fallback}
MISSING=[${NOPE}]
DOLLAR=$HOME
lower_case=works
EMPTY=
this line does not parse
QUOTED="x" # trailing comment
ONLY_COMMENT=   # nothing
HASH_VALUE=#value
`, env)
	want := map[string]string{
		"PLAIN": "value", "EXPORTED": "yes", "SPACED": "padded value", "HASH": "a#b",
		"SQ": `single /home/ada \n`, "DQ": "line1\nline2 \"q\" /home/ada", "MULTI": "first\nsecond",
		"SHADOWED": "file", "FROM_FILE": "file/x", "FROM_ENV": "from-env", "DEFAULTED": "fallback",
		"MISSING": "[]", "DOLLAR": "$HOME", "lower_case": "works", "EMPTY": "", "QUOTED": "x", "ONLY_COMMENT": "# nothing", "HASH_VALUE": "#value",
	}
	if !reflect.DeepEqual(f.values, want) {
		for k, v := range want {
			if f.values[k] != v {
				t.Errorf("%s = %q, want %q", k, f.values[k], v)
			}
		}
		for k := range f.values {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected key %q", k)
			}
		}
	}
	if !reflect.DeepEqual(f.skipped, []int{18}) {
		t.Errorf("skipped lines %v, want [18]", f.skipped)
	}
}

// TestLoadAsTheSDK: keys in any case in config.env and the environment; an
// empty environment variable overrides the file; ${VAR}; SDK-only keys
// accepted; config show's warnings for keys the SDK rejects.
func TestLoadAsTheSDK(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.env"), `prescient_endpoint_url=https://${API_HOST}/
Prescient_Client_Id=file-client
prescient_auth_url=https://login.example.com/
prescient_tenant_id=file-tenant
prescient_aws_role=arn:aws:iam::123456789012:role/file
PRESCIENT_AUTH_TOKEN_PATH=/tmp/old-token
PRESCIENT_UPLOAD_ROLE=arn:aws:iam::123456789012:role/upload
PRESCIENT_UPLOAD_BUCKET=uploads
PRESCIENT_CLIENT_SECRET=${SP_SECRET}
OTHER_TOOL=1
EMPTY_OTHER=
`)
	environ := []string{"API_HOST=api.example.com", "prescient_aws_region=eu-west-1", "PRESCIENT_AWS_ROLE=",
		"PRESCIENT_CONFIG_DIR=" + t.TempDir(), "SP_SECRET=sp-secret-value-123456"}
	m := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	s, err := Load(LoadOptions{Dir: dir, LookupEnv: envOf(m), Environ: func() []string { return environ }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want, src string }{
		{VarEndpointURL, s.EndpointURL, "https://api.example.com/", "file"},
		{VarClientID, s.ClientID, "file-client", "file"},
		{VarAWSRegion, s.AWSRegion, "eu-west-1", "env"},
		{VarAWSRole, s.AWSRole, "", "env"},
		{VarUploadBucket, s.values[VarUploadBucket], "uploads", "file"},
		{VarClientSecret, s.ClientSecret, "sp-secret-value-123456", "file"},
	} {
		if tc.got != tc.want || s.Source(tc.name).Kind != tc.src {
			t.Errorf("%s = %q from %v; want %q from %s", tc.name, tc.got, s.Source(tc.name), tc.want, tc.src)
		}
	}
	if err := s.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	w := strings.Join(s.FileWarnings(), "\n")
	for _, k := range []string{"PRESCIENT_CLIENT_SECRET in", "OTHER_TOOL in", "extra_forbidden"} {
		if !strings.Contains(w, k) {
			t.Errorf("warnings lack %q:\n%s", k, w)
		}
	}
	for _, k := range []string{"UPLOAD", "TOKEN_PATH", "prescient_endpoint_url", "sp-secret", "EMPTY_OTHER"} {
		if strings.Contains(w, k) {
			t.Errorf("warnings mention %q:\n%s", k, w)
		}
	}
}

func TestValidateGoogle(t *testing.T) {
	s, err := Load(LoadOptions{Dir: t.TempDir(), LookupEnv: envOf(map[string]string{
		VarEndpointURL: "https://api.example.com/", VarClientID: "c", VarAuthURL: "https://accounts.example.com",
		VarAuthProvider: "Google", VarConfigDir: t.TempDir(),
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), VarGoogleClientSecret) || strings.Contains(err.Error(), VarTenantID) {
		t.Errorf("google without a secret: %v", err)
	}
	if s.GoogleRedirectPort != DefaultGoogleRedirectPort {
		t.Errorf("port %d", s.GoogleRedirectPort)
	}
}
