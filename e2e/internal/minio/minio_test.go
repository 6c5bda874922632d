package minio

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestFindBinaryHonoursMinioBin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MINIO_BIN", filepath.Join(dir, "nope"))
	_, err := FindBinary()
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("FindBinary with a bad MINIO_BIN: err = %v, want one that says to run make deps", err)
	}
	exe := filepath.Join(dir, "minio")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MINIO_BIN", exe)
	if got, err := FindBinary(); err != nil || got != exe {
		t.Fatalf("FindBinary = %q, %v; want %q", got, err, exe)
	}
}

func TestServerSurvivesKillAndRestart(t *testing.T) {
	s := StartT(t, Options{Dir: t.TempDir()})
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("Endpoint = %q, want http://127.0.0.1:PORT", s.Endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	want := []byte("hello minio")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: bytes.NewReader(want)}); err != nil {
		t.Fatal(err)
	}

	endpoint := s.Endpoint
	s.Kill()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Endpoint != endpoint {
		t.Fatalf("Restart moved the endpoint from %s to %s", endpoint, s.Endpoint)
	}
	if got := getObject(ctx, t, s.Client(), "bkt", "k"); !bytes.Equal(got, want) {
		t.Fatalf("after restart got %q, want %q", got, want)
	}
}

func TestPauseMakesRequestsHangUntilResume(t *testing.T) {
	s := StartT(t, Options{})
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
	cancel()
	if err == nil {
		t.Fatal("ListBuckets on a paused server succeeded")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("ListBuckets after Resume: %v", err)
	}
}

func getObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
