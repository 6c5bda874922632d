// Package minio starts a real MinIO server for end-to-end tests and demos.
//
// The server binary is found in $MINIO_BIN, then on PATH, then in
// $(go env GOPATH)/bin; `make deps` installs it. Each server listens on
// 127.0.0.1 on a free port with random root credentials, keeps its data in a
// directory that survives Restart, and is killed with the test process where
// the OS allows it (Pdeathsig on Linux).
//
// Fault tests use Kill (SIGKILL), Restart (same directory, same port) and
// Pause/Resume (SIGSTOP/SIGCONT) to make the server die, come back or hang in
// the middle of a read.
package minio
