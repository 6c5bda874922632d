package creds

import (
	"slices"
	"sync"
	"time"
)

// Stats counts renewals, for logs and reports.
type Stats struct {
	TokenRenewals      int64 // new bearer tokens obtained
	TokenFailures      int64
	CredentialRenewals int64 // new bucket credentials obtained
	CredentialFailures int64
	// CredentialWaitP50 and CredentialWaitMax are how long bucket-credential
	// renewals took: a read that needs credentials waits this long.
	CredentialWaitP50 time.Duration
	CredentialWaitMax time.Duration
}

// counters is shared by the Bearer and the credential providers of one
// session.
type counters struct {
	mu sync.Mutex
	s  Stats           // guarded by mu; wait fields filled by snapshot
	w  []time.Duration // guarded by mu; the last maxWaits credential renewal times
}

const maxWaits = 4096

func (c *counters) add(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.s)
}

func (c *counters) credentialRenewed(took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.CredentialRenewals++
	if len(c.w) == maxWaits {
		c.w = c.w[1:]
	}
	c.w = append(c.w, took)
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	if len(c.w) > 0 {
		w := slices.Clone(c.w)
		slices.Sort(w)
		s.CredentialWaitP50, s.CredentialWaitMax = w[len(w)/2], w[len(w)-1]
	}
	return s
}
