// Package e2e holds the end-to-end tests: they build the real prescientfs
// binary and run it against real servers started by the tests themselves
// on 127.0.0.1 (MinIO as S3 and STS, a STAC API server, a test identity
// provider), with GDAL fixtures and the kernel's FUSE. The servers live in
// e2e/internal; e2e/cmd holds the demo stack and the benchmark driver.
package e2e
