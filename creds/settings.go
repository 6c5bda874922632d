package creds

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Variable names, as the Python SDK's settings fields (upper-cased, with
// the PRESCIENT_ prefix), plus the ones this tool adds.
const (
	VarEndpointURL  = "PRESCIENT_ENDPOINT_URL"
	VarAPIKey       = "PRESCIENT_API_KEY" // #nosec G101 -- a variable's name, not a credential
	VarAuthProvider = "PRESCIENT_AUTH_PROVIDER"
	VarClientID     = "PRESCIENT_CLIENT_ID"
	VarAuthURL      = "PRESCIENT_AUTH_URL"
	VarTenantID     = "PRESCIENT_TENANT_ID"
	VarAWSRole      = "PRESCIENT_AWS_ROLE"
	VarAWSRegion    = "PRESCIENT_AWS_REGION"
	// Read by the SDK for Google sign-in.
	VarGoogleClientSecret = "PRESCIENT_GOOGLE_CLIENT_SECRET" // #nosec G101 -- a variable's name
	VarGoogleRedirectPort = "PRESCIENT_GOOGLE_REDIRECT_PORT"
	// Read by the SDK and accepted here, with no effect on a read-only mount.
	VarAuthTokenPath     = "PRESCIENT_AUTH_TOKEN_PATH" // #nosec G101 -- a variable's name (deprecated in the SDK)
	VarUploadRole        = "PRESCIENT_UPLOAD_ROLE"
	VarUploadBucket      = "PRESCIENT_UPLOAD_BUCKET"
	VarIngestEndpointURL = "PRESCIENT_INGEST_ENDPOINT_URL" // SDK 0.4.3
	// Added by prescientfs: never needed in config.env (the SDK rejects
	// keys it does not know there); set them in the environment, or let
	// `auth login` save the non-secret ones in the profile.
	VarClientSecret = "PRESCIENT_CLIENT_SECRET"        // #nosec G101 -- a variable's name, not a credential
	VarScopes       = "PRESCIENT_SCOPES"               // space- or comma-separated
	VarSTSDuration  = "PRESCIENT_AWS_SESSION_DURATION" // seconds; 0 omits DurationSeconds
	VarProfile      = "PRESCIENT_AUTH_PROFILE"
	VarConfigDir    = "PRESCIENT_CONFIG_DIR"
)

// Defaults.
const (
	DefaultAuthProvider = "microsoft"
	// ProviderGoogle is PRESCIENT_AUTH_PROVIDER=google.
	ProviderGoogle     = "google"
	DefaultScope       = "https://graph.microsoft.com/.default"
	DefaultProfile     = "default"
	DefaultSTSDuration = time.Hour
	// DefaultGoogleRedirectPort is the SDK's loopback port for Google sign-in.
	DefaultGoogleRedirectPort = 8765
	// EnvFileName is read from the working directory when --env-file is not given.
	EnvFileName = "config.env"
)

type varInfo struct {
	name     string
	secret   bool // masked in Entries, never saved in a profile
	profiled bool // saved with a profile by `auth login`
	sdk      bool // a field of the SDK's Settings (allowed in config.env)
}

// vars lists every setting in display order.
var vars = []varInfo{
	{name: VarEndpointURL, profiled: true, sdk: true},
	{name: VarAPIKey, secret: true, sdk: true},
	{name: VarAuthProvider, profiled: true, sdk: true},
	{name: VarClientID, profiled: true, sdk: true},
	{name: VarAuthURL, profiled: true, sdk: true},
	{name: VarTenantID, profiled: true, sdk: true},
	{name: VarAWSRole, profiled: true, sdk: true},
	{name: VarAWSRegion, profiled: true, sdk: true},
	{name: VarGoogleClientSecret, secret: true, sdk: true},
	{name: VarGoogleRedirectPort, profiled: true, sdk: true},
	{name: VarAuthTokenPath, sdk: true},
	{name: VarUploadRole, sdk: true},
	{name: VarUploadBucket, sdk: true},
	{name: VarIngestEndpointURL, sdk: true},
	{name: VarClientSecret, secret: true},
	{name: VarScopes, profiled: true},
	{name: VarSTSDuration, profiled: true},
	{name: VarProfile},
	{name: VarConfigDir},
}

// Source says where a setting came from.
type Source struct {
	Kind  string // "flag", "env", "file", "profile", "default", or "" when unset
	Where string // the file or profile, when Kind says there is one
}

func (s Source) String() string {
	switch {
	case s.Kind == "":
		return "unset"
	case s.Where != "":
		return s.Kind + " " + s.Where
	}
	return s.Kind
}

// Settings are the effective settings and where each came from.
type Settings struct {
	EndpointURL  string
	APIKey       string
	AuthProvider string
	ClientID     string
	AuthURL      string
	TenantID     string
	AWSRole      string
	AWSRegion    string
	ClientSecret string
	// GoogleClientSecret and GoogleRedirectPort are the Google provider's.
	GoogleClientSecret string
	GoogleRedirectPort int
	Scopes             []string
	// STSDuration is DurationSeconds for AssumeRoleWithWebIdentity; 0
	// omits it, so the web identity token's exp decides.
	STSDuration time.Duration
	// Profile is the selected profile of the session store.
	Profile string
	// Store is the session store (PRESCIENT_CONFIG_DIR or the home directory).
	Store *Store

	values   map[string]string
	sources  map[string]Source
	lookedIn []string // human descriptions of where settings were looked for
	envFile  string   // the config.env read, "" when none
	file     *dotenvFile
}

// LoadOptions says where Load looks.
type LoadOptions struct {
	// LookupEnv reads the process environment; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
	// Environ lists the process environment, for names in another case
	// (prescient_endpoint_url); os.Environ when both it and LookupEnv are nil.
	Environ func() []string
	// Dir is the working directory holding config.env; "." when empty.
	Dir string
	// EnvFile is --env-file; it must exist. Replaces Dir/config.env.
	EnvFile string
	// Flags are settings given on the command line, by variable name (e.g.
	// PRESCIENT_AUTH_PROFILE for --auth-profile). They win over everything.
	Flags map[string]string
	// Home is the home directory for the default store; os.UserHomeDir when empty.
	Home string
}

// Load reads settings from flags, the environment, the env file and the
// selected profile, in that order of precedence.
func Load(o LoadOptions) (*Settings, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
		if o.Environ == nil {
			o.Environ = os.Environ
		}
	}
	s := &Settings{values: map[string]string{}, sources: map[string]Source{}}
	// As pydantic-settings with case_sensitive=False: names in any case;
	// a variable set to "" counts (it overrides config.env).
	anyCase := map[string]string{}
	if o.Environ != nil {
		for _, kv := range o.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				anyCase[strings.ToUpper(k)] = v
			}
		}
	}
	layers := []layer{
		{Source{Kind: "flag"}, mapGetter(o.Flags)},
		{Source{Kind: "env"}, func(k string) (string, bool) {
			if v, ok := o.LookupEnv(k); ok {
				return v, true
			}
			v, ok := anyCase[k]
			return v, ok
		}},
	}
	s.lookedIn = append(s.lookedIn, "the environment")

	envFile := o.EnvFile
	explicit := envFile != ""
	if !explicit {
		dir := o.Dir
		if dir == "" {
			dir = "."
		}
		envFile = filepath.Join(dir, EnvFileName)
	}
	if abs, err := filepath.Abs(envFile); err == nil {
		envFile = abs
	}
	file, err := readDotenv(envFile, o.LookupEnv)
	switch {
	case err == nil:
		s.lookedIn = append(s.lookedIn, envFile)
		s.envFile, s.file = envFile, file
		upper := map[string]string{}
		for _, k := range file.keys {
			upper[strings.ToUpper(k)] = file.values[k]
		}
		layers = append(layers, layer{Source{Kind: "file", Where: envFile}, func(k string) (string, bool) {
			v, ok := upper[k]
			return v, ok
		}})
	case errors.Is(err, os.ErrNotExist) && !explicit:
		s.lookedIn = append(s.lookedIn, envFile+" (not found)")
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: --env-file %s does not exist", ErrNotConfigured, envFile)
	default:
		return nil, fmt.Errorf("read %s: %w", envFile, err)
	}

	// The store and profile are chosen from the layers so far.
	for _, name := range []string{VarConfigDir, VarProfile} {
		for _, l := range layers {
			if v, ok := l.get(name); ok {
				s.values[name], s.sources[name] = strings.TrimSpace(v), l.src
				break
			}
		}
	}
	home := o.Home
	if home == "" && s.values[VarConfigDir] == "" {
		if home, err = os.UserHomeDir(); err != nil {
			return nil, fmt.Errorf("find the session store: %w (set %s)", err, VarConfigDir)
		}
	}
	s.Store = NewStore(s.values[VarConfigDir], home)
	s.Profile = s.values[VarProfile]
	if s.Profile == "" {
		def, err := s.Store.DefaultProfile()
		if err != nil {
			return nil, err
		}
		s.Profile, s.sources[VarProfile] = def, Source{Kind: "default", Where: s.Store.DefaultFile}
		if def == "" {
			s.Profile, s.sources[VarProfile] = DefaultProfile, Source{Kind: "default"}
		}
	}
	if err := ValidProfileName(s.Profile); err != nil {
		return nil, err
	}
	prof, err := s.Store.LoadProfile(s.Profile)
	if err != nil {
		return nil, err
	}
	if len(prof) > 0 {
		where := fmt.Sprintf("%q (%s)", s.Profile, s.Store.settingsPath(s.Profile))
		s.lookedIn = append(s.lookedIn, "profile "+where)
		layers = append(layers, layer{Source{Kind: "profile", Where: s.Profile}, mapGetter(prof)})
	} else {
		s.lookedIn = append(s.lookedIn, fmt.Sprintf("profile %q (no saved settings)", s.Profile))
	}

	for _, v := range vars {
		if _, done := s.values[v.name]; done {
			continue
		}
		for _, l := range layers {
			if val, ok := l.get(v.name); ok {
				s.values[v.name], s.sources[v.name] = strings.TrimSpace(val), l.src
				break
			}
		}
	}
	if err := s.fill(); err != nil {
		return nil, err
	}
	if s.AuthProvider == ProviderGoogle && s.GoogleClientSecret == "" {
		if sec := s.Store.savedGoogleClientSecret(s.Profile); sec != "" {
			s.GoogleClientSecret, s.values[VarGoogleClientSecret] = sec, sec
			s.sources[VarGoogleClientSecret] = Source{Kind: "profile", Where: s.Profile}
		}
	}
	return s, nil
}

// layer is one place settings come from.
type layer struct {
	src Source
	get func(string) (string, bool)
}

func mapGetter(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok && v != "" }
}

// fill copies values into the typed fields, applying defaults.
func (s *Settings) fill() (err error) {
	def := func(name, val string) string {
		if v := s.values[name]; v != "" {
			return v
		}
		s.sources[name] = Source{Kind: "default"}
		s.values[name] = val
		return val
	}
	s.EndpointURL = s.values[VarEndpointURL]
	s.APIKey = s.values[VarAPIKey]
	s.AuthProvider = strings.ToLower(def(VarAuthProvider, DefaultAuthProvider))
	s.ClientID = s.values[VarClientID]
	s.AuthURL = s.values[VarAuthURL]
	s.TenantID = s.values[VarTenantID]
	s.AWSRole = s.values[VarAWSRole]
	s.AWSRegion = s.values[VarAWSRegion]
	s.ClientSecret = s.values[VarClientSecret]
	s.GoogleClientSecret = s.values[VarGoogleClientSecret]
	port := def(VarGoogleRedirectPort, strconv.Itoa(DefaultGoogleRedirectPort))
	if s.GoogleRedirectPort, err = strconv.Atoi(port); err != nil || s.GoogleRedirectPort < 0 || s.GoogleRedirectPort > 65535 {
		return fmt.Errorf("%w: %s=%q (%s): want a port number", ErrNotConfigured, VarGoogleRedirectPort, port, s.sources[VarGoogleRedirectPort])
	}
	s.Scopes = strings.FieldsFunc(def(VarScopes, DefaultScope), func(r rune) bool { return r == ' ' || r == ',' })
	d := def(VarSTSDuration, strconv.Itoa(int(DefaultSTSDuration/time.Second)))
	secs, err := strconv.Atoi(d)
	if err != nil || secs < 0 || secs > math.MaxInt32 {
		return fmt.Errorf("%w: %s=%q (%s): want whole seconds, 0 to omit", ErrNotConfigured, VarSTSDuration, d, s.sources[VarSTSDuration])
	}
	s.STSDuration = time.Duration(secs) * time.Second
	return nil
}

// Configured reports whether any Prescient setting points at an API: without
// PRESCIENT_ENDPOINT_URL the tool runs in its anonymous/AWS-chain mode.
func (s *Settings) Configured() bool { return s.EndpointURL != "" }

// Mode is how the process authenticates.
type Mode string

// Modes.
const (
	ModeAPIKey           Mode = "api-key"
	ModeServicePrincipal Mode = "service-principal"
	ModeUser             Mode = "user"
)

// Mode returns the authentication mode the settings select.
func (s *Settings) Mode() Mode {
	switch {
	case s.APIKey != "":
		return ModeAPIKey
	case s.ClientSecret != "" && s.AuthProvider != ProviderGoogle:
		return ModeServicePrincipal
	}
	return ModeUser
}

// Validate checks the settings as the SDK does: the endpoint always;
// without an API key, the client id and auth URL, and the tenant for the
// Microsoft provider. The error names the variable and where it was looked for.
func (s *Settings) Validate() error {
	need := []string{VarEndpointURL}
	if s.APIKey == "" {
		need = append(need, VarClientID, VarAuthURL)
		switch s.AuthProvider {
		case DefaultAuthProvider:
			need = append(need, VarTenantID)
		case ProviderGoogle:
			need = append(need, VarGoogleClientSecret)
		default:
			return fmt.Errorf("%w: %s=%q (%s): want microsoft or google", ErrNotConfigured,
				VarAuthProvider, s.AuthProvider, s.sources[VarAuthProvider])
		}
	}
	var missing []string
	for _, n := range need {
		if s.values[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		hint := ""
		if slices.Contains(missing, VarGoogleClientSecret) {
			hint = "; set it and run `prescientfs auth login`: the profile keeps it from then on"
		}
		return fmt.Errorf("%w: %s not set (looked in %s)%s",
			ErrNotConfigured, strings.Join(missing, ", "), strings.Join(s.lookedIn, ", "), hint)
	}
	for _, n := range []string{VarEndpointURL, VarAuthURL} {
		if v := s.values[n]; v != "" {
			if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
				return fmt.Errorf("%w: %s=%q (%s) is not an absolute URL", ErrNotConfigured, n, v, s.sources[n])
			}
		}
	}
	return nil
}

// STACURL is the catalog URL: the endpoint joined with "stac".
func (s *Settings) STACURL() (string, error) { return URLJoin(s.EndpointURL, "stac") }

// Authority is the auth URL joined with the tenant id.
func (s *Settings) Authority() (string, error) {
	if s.TenantID == "" {
		return s.AuthURL, nil
	}
	return URLJoin(s.AuthURL, s.TenantID)
}

// Source returns where the named variable came from.
func (s *Settings) Source(name string) Source { return s.sources[name] }

// Entry is one line of `config show`.
type Entry struct {
	Name   string
	Value  string // masked for secrets
	Source Source
}

// Entries lists every setting with its source; secrets are masked.
func (s *Settings) Entries() []Entry {
	out := make([]Entry, 0, len(vars))
	for _, v := range vars {
		val := s.values[v.name]
		if v.name == VarProfile {
			val = s.Profile
		}
		if v.secret && val != "" {
			val = Mask(val)
		}
		out = append(out, Entry{Name: v.name, Value: val, Source: s.sources[v.name]})
	}
	return out
}

// ProfileValues returns the non-secret settings `auth login` saves with a
// profile.
func (s *Settings) ProfileValues() map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		if v.profiled && !v.secret && s.values[v.name] != "" && s.sources[v.name].Kind != "default" {
			m[v.name] = s.values[v.name]
		}
	}
	return m
}

// Mask hides a secret, keeping enough to tell two apart.
func Mask(v string) string {
	if len(v) < 12 {
		return "****"
	}
	return "****" + v[len(v)-4:]
}

// URLJoin resolves ref against base as Python's urllib.parse.urljoin does:
// "https://h/api" + "stac" is "https://h/stac", "https://h/api/" + "stac"
// is "https://h/api/stac".
func URLJoin(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", base, err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", ref, err)
	}
	return b.ResolveReference(r).String(), nil
}

// FileWarnings lists what in config.env the Python SDK would reject or
// skip: keys that are not fields of its Settings (pydantic's
// extra_forbidden fails the whole file) and lines python-dotenv cannot
// parse. prescientfs reads those keys all the same.
func (s *Settings) FileWarnings() []string {
	if s.file == nil {
		return nil
	}
	sdk := map[string]bool{}
	for _, v := range vars {
		sdk[v.name] = v.sdk
	}
	var out []string
	for _, k := range s.file.keys {
		// pydantic-settings passes on unknown keys only with a value.
		if sdk[strings.ToUpper(k)] || s.file.values[k] == "" {
			continue
		}
		hint := "remove it"
		if _, ours := sdk[strings.ToUpper(k)]; ours {
			hint = "set it in the environment instead (or let `prescientfs auth login` save it in the profile)"
		}
		out = append(out, fmt.Sprintf("%s in %s: the Python SDK rejects keys it does not know (extra_forbidden); %s",
			k, s.envFile, hint))
	}
	if len(s.file.skipped) > 0 {
		out = append(out, fmt.Sprintf("%s: lines %s do not parse as KEY=VALUE; python-dotenv and prescientfs skip them",
			s.envFile, s.file.skippedString()))
	}
	if s.values[VarIngestEndpointURL] != "" && s.sources[VarIngestEndpointURL].Kind == "file" {
		out = append(out, VarIngestEndpointURL+" is known to the SDK from 0.4.3; 0.4.2 and older reject it")
	}
	return out
}
