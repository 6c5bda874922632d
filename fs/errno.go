package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// toErrno is the one mapping from typed errors to errno values, by
// errors.Is, never by error text:
//
//	not found (object, collection, item)            ENOENT
//	denied, or credentials that cannot be renewed   EACCES
//	object changed under an open handle (ETag)      ESTALE
//	everything else, after retries (timeouts too)   EIO
//
// There is no EINTR: an operation is cancelled only for a caller that is
// dying (interrupt.go), which never sees the answer; it gets EIO.
// Errnos inside the chain (ECONNRESET from a socket, say) are not passed
// through: to a program reading the mount they are an I/O error.
func toErrno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, objread.ErrNotFound), errors.Is(err, stacindex.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, objread.ErrDenied), errors.Is(err, stacindex.ErrUnauthorized), creds.IsAuthError(err):
		return syscall.EACCES
	case errors.Is(err, objread.ErrChanged):
		return syscall.ESTALE
	}
	return syscall.EIO
}

// fail maps err to an errno and logs the original error once, with the
// operation and the path it happened on, and without secrets (URLs lose
// their query strings and user info: signed URLs carry credentials there).
// Not-found and a dying caller's cancellation are normal and logged at
// debug level only.
func (f *fsys) fail(op, path string, err error) syscall.Errno {
	e := toErrno(err)
	lvl := slog.LevelWarn
	if e == syscall.ENOENT || errors.Is(err, context.Canceled) {
		lvl = slog.LevelDebug
	}
	f.Log.Log(context.Background(), lvl, op+" failed", "path", "/"+trimSlash(path), "errno", errnoName(e), "err", objread.Redact(err))
	return e
}

func trimSlash(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	return p
}

// errnoName is the symbolic name, for logs people grep.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ESTALE:
		return "ESTALE"
	case syscall.EIO:
		return "EIO"
	}
	return e.Error()
}
