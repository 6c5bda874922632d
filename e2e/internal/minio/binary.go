package minio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoBinary is returned by Start when no MinIO binary can be found.
var ErrNoBinary = errors.New("minio binary not found: run `make deps` (or set MINIO_BIN)")

// FindBinary returns the path of the MinIO server binary: $MINIO_BIN, else
// `minio` on PATH, else $(go env GOPATH)/bin/minio.
func FindBinary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("MINIO_BIN=%s is not an executable file: %w", p, ErrNoBinary)
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	for _, dir := range gopathBins() {
		p := filepath.Join(dir, "minio")
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", ErrNoBinary
}

func gopathBins() []string {
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
