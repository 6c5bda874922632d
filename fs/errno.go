package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// toErrno is the one mapping from typed errors to errno values.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, objread.ErrNotFound), errors.Is(err, stacindex.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, objread.ErrDenied), errors.Is(err, stacindex.ErrUnauthorized), creds.IsAuthError(err):
		return syscall.EACCES
	case errors.Is(err, objread.ErrChanged):
		return syscall.ESTALE
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return syscall.EIO
	}
	return syscall.EIO
}

// fail maps err to an errno and logs the original error once, with the
// path it happened on. Not-found and interruptions are normal and logged
// at debug level only.
func (f *fsys) fail(op, path string, err error) syscall.Errno {
	e := toErrno(err)
	lvl := slog.LevelWarn
	if e == syscall.ENOENT || e == syscall.EINTR {
		lvl = slog.LevelDebug
	}
	f.Log.Log(context.Background(), lvl, op+" failed", "path", path, "errno", e.Error(), "err", err)
	return e
}
