package creds

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// jwtClaims are the few claims read from a token without verifying it
// (the API and STS verify; this only decides when to renew and what to show).
type jwtClaims struct {
	Exp               int64  `json:"exp"`
	Iat               int64  `json:"iat"`
	PreferredUsername string `json:"preferred_username"`
	TenantID          string `json:"tid"`
	Subject           string `json:"sub"`
	Email             string `json:"email"`
}

var errNotJWT = errors.New("not a JWT")

func parseJWT(tok string) (jwtClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwtClaims{}, errNotJWT
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return jwtClaims{}, errNotJWT
	}
	var c jwtClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return jwtClaims{}, errNotJWT
	}
	return c, nil
}

// expiry returns the token's exp, or fallback when it has none.
func (c jwtClaims) expiry(fallback time.Time) time.Time {
	if c.Exp == 0 {
		return fallback
	}
	return time.Unix(c.Exp, 0)
}
