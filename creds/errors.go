package creds

import (
	"errors"
	"fmt"
)

// ErrLoginRequired means there is no usable session: nothing saved, or the
// refresh token was revoked or expired. The remedy is
// `prescientfs auth login`.
var ErrLoginRequired = errors.New("login required: run `prescientfs auth login`")

// ErrCredentialsRejected means the API key or client secret was refused;
// the error names the variable to check.
var ErrCredentialsRejected = errors.New("credentials rejected")

// ErrNotConfigured means a required setting is missing; the error names it
// and where it was looked for.
var ErrNotConfigured = errors.New("prescient settings")

// IsAuthError reports whether err means a person must act (log in again or
// fix the key): retrying will not help. File systems map it to EACCES.
func IsAuthError(err error) bool {
	return errors.Is(err, ErrLoginRequired) || errors.Is(err, ErrCredentialsRejected)
}

// loginRequired wraps ErrLoginRequired with what happened.
func loginRequired(profile, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if profile != "" {
		return fmt.Errorf("profile %q: %s: %w", profile, what, ErrLoginRequired)
	}
	return fmt.Errorf("%s: %w", what, ErrLoginRequired)
}
