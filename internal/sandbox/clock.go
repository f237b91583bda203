package sandbox

import (
	"sync"
	"time"
)

// vendorClock is the fake CRMs' clock: real time, except while the history is written,
// when it stands at the moment of each change so the vendors stamp records as they would
// have been stamped then.
type vendorClock struct {
	mu sync.Mutex
	at time.Time // zero: real time
}

// Now is the vendors' time.
func (c *vendorClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now()
	}
	return c.at
}

// set stops the clock at t (zero: back to real time).
func (c *vendorClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = t
}
