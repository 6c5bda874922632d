package idp

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Claims are a JWT's claims, decoded.
type Claims map[string]any

// Subject returns the sub claim.
func (c Claims) Subject() string { s, _ := c["sub"].(string); return s }

// Expiry returns the exp claim as a time (zero when absent).
func (c Claims) Expiry() time.Time {
	if f, ok := c["exp"].(float64); ok {
		return time.Unix(int64(f), 0)
	}
	return time.Time{}
}

// ErrInvalidToken is wrapped by every Verify failure.
var ErrInvalidToken = errors.New("invalid token")

// ErrExpiredToken is wrapped (with ErrInvalidToken) when a token's exp has passed.
var ErrExpiredToken = errors.New("token expired")

var b64 = base64.RawURLEncoding

// signRS256 returns a compact JWS of claims signed with key, header kid.
func signRS256(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// VerifyJWT checks an RS256 token's signature against pub, its exp against
// now (and nbf, with a second of leeway) and, when aud is not empty, that its
// aud (string or list) or azp equals aud. It returns the claims.
func VerifyJWT(token string, pub *rsa.PublicKey, aud string, now time.Time) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a JWS compact token", ErrInvalidToken)
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil || hdr.Alg != "RS256" {
		return nil, fmt.Errorf("%w: header is not RS256", ErrInvalidToken)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding", ErrInvalidToken)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	var c Claims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	exp := c.Expiry()
	if exp.IsZero() {
		return nil, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w: %w (exp %s)", ErrInvalidToken, ErrExpiredToken, exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := c["nbf"].(float64); ok && now.Add(time.Second).Before(time.Unix(int64(nbf), 0)) {
		return nil, fmt.Errorf("%w: not valid yet", ErrInvalidToken)
	}
	if aud != "" && !hasAudience(c, aud) {
		return nil, fmt.Errorf("%w: audience is not %q", ErrInvalidToken, aud)
	}
	return c, nil
}

func hasAudience(c Claims, aud string) bool {
	switch v := c["aud"].(type) {
	case string:
		if v == aud {
			return true
		}
	case []any:
		for _, a := range v {
			if a == aud {
				return true
			}
		}
	}
	azp, _ := c["azp"].(string)
	return azp == aud
}

func decodeSegment(seg string, v any) error {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// jwk is one RSA public key in a JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func publicJWK(kid string, pub *rsa.PublicKey) jwk {
	return jwk{
		Kty: "RSA", Use: "sig", Alg: "RS256", Kid: kid,
		N: b64.EncodeToString(pub.N.Bytes()),
		E: b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}
