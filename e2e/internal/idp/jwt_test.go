package idp

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"
)

func TestVerifyJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Unix(2_000_000_000, 0)
	sign := func(claims map[string]any) string {
		tok, err := signRS256(key, "k1", claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(map[string]any{"aud": "app", "exp": now.Add(time.Minute).Unix(), "sub": "u"})
	for _, tc := range []struct {
		name    string
		tok     string
		pub     *rsa.PublicKey
		wantErr error
	}{
		{"valid", good, &key.PublicKey, nil},
		{"other key", good, &other.PublicKey, ErrInvalidToken},
		{"expired", sign(map[string]any{"aud": "app", "exp": now.Add(-time.Second).Unix()}), &key.PublicKey, ErrExpiredToken},
		{"wrong audience", sign(map[string]any{"aud": "x", "exp": now.Add(time.Minute).Unix()}), &key.PublicKey, ErrInvalidToken},
		{"azp instead of aud", sign(map[string]any{"azp": "app", "exp": now.Add(time.Minute).Unix()}), &key.PublicKey, nil},
		{"no exp", sign(map[string]any{"aud": "app"}), &key.PublicKey, ErrInvalidToken},
		{"tampered", good[:len(good)-4] + "AAAA", &key.PublicKey, ErrInvalidToken},
		{"garbage", "a.b", &key.PublicKey, ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := VerifyJWT(tc.tok, tc.pub, "app", now)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && c.Expiry().IsZero() {
				t.Error("no expiry in claims")
			}
		})
	}
}
