package bolt

import (
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many writes one group commit holds.
const maxGroup = 1000

// committer is a group commit: writes that arrive while a commit is running
// are queued and all committed together in the next transaction, with one
// fsync. A write that finds no commit running starts one at once, so a lone
// write waits for no timer. bbolt's own Batch instead closes a batch after a
// fixed delay (MaxBatchDelay); when a commit (two fdatasyncs) takes longer
// than that delay, batches stay small and writes queue behind each other's
// fsyncs.
//
// As with bbolt's Batch, a function may run more than once (when another
// function in its group fails, the group is retried without it), so it must
// be idempotent apart from its effect on the transaction.
type committer struct {
	db *bbolt.DB
	// begin, when set, is called at the start of every transaction the
	// committer opens, and finish after the group's functions all
	// succeeded, before the commit: state shared by the functions of one
	// transaction (the summary counters) is set up and written once per
	// transaction rather than once per function.
	begin  func(*bbolt.Tx)
	finish func(*bbolt.Tx) error

	mu      sync.Mutex
	queue   []groupCall
	running bool
}

type groupCall struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

// do runs fn in a read-write transaction shared with the other writes
// queued meanwhile, and returns once that transaction is durable (or fn's
// own error). A caller that finds no commit running commits the first
// group (its own write and whatever queued meanwhile) on its own
// goroutine, whose stack is already grown, and leaves the rest to a new
// goroutine: a lone write starts no goroutine at all.
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	call := groupCall{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	if c.running {
		c.mu.Unlock()
		return <-call.err
	}
	c.running = true
	c.mu.Unlock()
	if c.next() { // the first group holds this call: the queue was empty
		go c.loop()
	}
	return <-call.err
}

// loop commits queued writes, group after group, until the queue is empty.
func (c *committer) loop() {
	for c.next() {
	}
}

// next commits the next group of queued writes and reports whether more
// are queued; when none are, the committer is no longer running.
func (c *committer) next() bool {
	c.mu.Lock()
	n := min(len(c.queue), maxGroup)
	if n == 0 {
		c.running = false
		c.mu.Unlock()
		return false
	}
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	c.mu.Unlock()
	c.commit(group)
	c.mu.Lock()
	more := len(c.queue) > 0
	if !more {
		c.running = false
	}
	c.mu.Unlock()
	return more
}

// commit runs group in one transaction. When a function fails, the
// transaction is rolled back, that function is run alone to get its own
// answer, and the rest are committed again without it.
func (c *committer) commit(group []groupCall) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bbolt.Tx) error {
			c.started(tx)
			for i, call := range group {
				if err := safeCall(call.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return c.finished(tx)
		})
		if failed >= 0 {
			call := group[failed]
			group = append(group[:failed:failed], group[failed+1:]...)
			call.err <- c.db.Update(func(tx *bbolt.Tx) error {
				c.started(tx)
				if err := safeCall(call.fn, tx); err != nil {
					return err
				}
				return c.finished(tx)
			})
			continue
		}
		for _, call := range group {
			call.err <- err
		}
		return
	}
}

func (c *committer) started(tx *bbolt.Tx) {
	if c.begin != nil {
		c.begin(tx)
	}
}

func (c *committer) finished(tx *bbolt.Tx) error {
	if c.finish == nil {
		return nil
	}
	return safeCall(c.finish, tx)
}

func safeCall(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a store write: %v", p)
		}
	}()
	return fn(tx)
}
