// Package creds signs prescientfs in the way the Python prescient_sdk does
// and keeps the resulting credentials fresh for processes that live for days.
//
// Settings come from the SDK's PRESCIENT_* variables (process environment,
// then config.env or --env-file, then the saved profile); see Load. The
// identity is one of:
//
//   - a person, through an MSAL public client (device code or browser), whose
//     session is saved in a profile store after the Planet CLI's model
//     (Store): ~/.prescient.json names the default profile and
//     ~/.prescient/<profile>/ holds its MSAL token cache and settings;
//   - a person signing in with Google (PRESCIENT_AUTH_PROVIDER=google),
//     through golang.org/x/oauth2's installed-app flow (GoogleClient), whose
//     refresh token is saved in the same profile store;
//   - a service principal, through an MSAL confidential client and a secret;
//   - an API key.
//
// Settings are read as the SDK's pydantic-settings and python-dotenv read
// them (see dotenv.go): names in any case, an empty environment variable
// overriding config.env, ${VAR} expansion, the SDK's own keys accepted.
//
// The API bearer is the id_token (the access token for service principals).
// Bearer caches it, checks the token's own exp (MSAL looks only at the access
// token's expiry) and renews it ahead of expiry, one renewal at a time.
// Bucket credentials come from STS AssumeRoleWithWebIdentity with that token
// when PRESCIENT_AWS_ROLE is set, otherwise from the API's
// fileproxy/credentials endpoint with the bearer (or the API key), and are
// exposed as an *aws.CredentialsCache that renews ahead of expiry.
//
// Every MSAL operation re-reads the token cache from disk under an
// inter-process lock (flock), so a login in another terminal heals a running
// process, and concurrent refreshes from several processes never lose or
// corrupt each other's writes. Files are created 0600.
//
// Errors that need a person (a dead session, a rejected key) wrap
// ErrLoginRequired or ErrCredentialsRejected; IsAuthError reports both. No token,
// key or secret ever appears in an error or log line.
package creds
