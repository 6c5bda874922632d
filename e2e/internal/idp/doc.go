// Package idp is a test identity provider shaped like Microsoft Entra ID
// (Azure AD) v2.0, good enough for MSAL Go to sign in against it and for
// MinIO to accept its tokens in STS AssumeRoleWithWebIdentity.
//
// It serves HTTPS on 127.0.0.1 with a certificate from a CA it generates
// (CAFile is the PEM bundle: point SSL_CERT_FILE at it, or copy it into
// MinIO's <certs-dir>/CAs/ with WriteMinIOCerts). Under an authority
// https://127.0.0.1:PORT/<tenant> it answers:
//
//	GET  /<tenant>/v2.0/.well-known/openid-configuration
//	GET  /<tenant>/discovery/v2.0/keys             (JWKS)
//	POST /<tenant>/oauth2/v2.0/devicecode
//	POST /<tenant>/oauth2/v2.0/token               (device_code, refresh_token,
//	                                               client_credentials, authorization_code)
//	GET  /<tenant>/oauth2/v2.0/authorize           (auto-approves; form_post page or redirect with a code)
//	GET|POST /devicelogin?user_code=CODE           (approves a pending device code)
//
// Tokens are RS256 JWTs signed with a key whose kid is in the JWKS; the
// id_token carries aud = client id, the Azure claims MSAL reads (oid, tid,
// preferred_username) and "policy" for MinIO's claim-based policies.
// Test hooks set token lifetime, approve device codes, revoke refresh tokens
// (or, with Options.RotateRefreshTokens, make each good for one use), count
// what was issued and list every token issued (IssuedSecrets, for checking
// that none is ever logged).
package idp
