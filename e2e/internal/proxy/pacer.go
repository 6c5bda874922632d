package proxy

import "time"

// Pacer spaces the bytes of one response (or one connection) to a rate.
// It keeps a schedule, not a sleep per chunk: each chunk is due when the
// bytes before it have had their time at the rate, so a sleep that wakes
// late (timers are coarse on a loaded machine) is made up by the chunks
// after it, and a long transfer reaches the rate itself.
//
// A Pacer is used by one goroutine at a time.
type Pacer struct {
	due time.Time // when the next byte may go; zero: at once, a new schedule
}

const (
	// paceAhead: a chunk may go this much before it is due, so that a
	// fast connection sleeps every millisecond or so, not every chunk.
	paceAhead = time.Millisecond
	// paceMaxLag: how far behind its schedule a connection may be and
	// still catch up at full speed (after a late wake-up or a proxy that
	// was not scheduled for a while on a loaded machine, a reader that
	// paused); beyond it the schedule restarts from now.
	paceMaxLag = 100 * time.Millisecond
)

// Start begins a new schedule: the next chunk goes at once. Call it when a
// new response begins, so an idle connection earns no credit.
func (p *Pacer) Start() { p.due = time.Time{} }

// Wait blocks until n more bytes may be sent at rate bytes per second, and
// books them. A rate <= 0 is unlimited (and restarts the schedule).
func (p *Pacer) Wait(n int, rate int64) {
	if rate <= 0 {
		p.due = time.Time{}
		return
	}
	now := time.Now()
	if p.due.IsZero() {
		p.due = now
	} else if lag := now.Sub(p.due); lag > paceMaxLag {
		p.due = now.Add(-paceMaxLag)
	}
	if wait := p.due.Sub(now); wait > paceAhead {
		time.Sleep(wait)
	}
	p.due = p.due.Add(time.Duration(float64(n) * float64(time.Second) / float64(rate)))
}
