package main

import (
	"log/slog"
	"sync"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemd's service notification protocol (sd_notify), for units with
// Type=notify: READY=1 once the mount is live, STOPPING=1 when it starts
// to go away. Without NOTIFY_SOCKET (not started by systemd) both do
// nothing. The units in deploy/systemd run `prescientfs mount
// --foreground`, so the process systemd watches is the one that notifies.

// notifier sends each state at most once.
type notifier struct {
	log      *slog.Logger
	ready    sync.Once
	stopping sync.Once
}

func newNotifier(log *slog.Logger) *notifier { return &notifier{log: log} }

// Ready reports the mount at dir live.
func (n *notifier) Ready(dir string) {
	n.ready.Do(func() { n.send(daemon.SdNotifyReady + "\nSTATUS=serving " + dir) })
}

// Stopping reports that the mount is going away.
func (n *notifier) Stopping() {
	n.stopping.Do(func() { n.send(daemon.SdNotifyStopping + "\nSTATUS=unmounting") })
}

func (n *notifier) send(state string) {
	// The socket stays in the environment: the daemonized child of a
	// background mount (NotifyAccess=all) may need it.
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		n.log.Warn("systemd notification failed", "err", err)
	} else if sent {
		n.log.Debug("systemd notified", "state", state)
	}
}
