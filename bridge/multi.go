package bridge

import (
	"context"
	"errors"
	"sync"
)

// multi is a Bell that rings several bells.
type multi []Bell

// Multi returns a Bell whose Ring goes to every one of bells and whose Run
// runs them all, returning once ctx is done and every bell's Run has
// returned, with their errors joined. Nil bells are skipped, so an
// unconfigured bell can be passed as nil.
func Multi(bells ...Bell) Bell {
	m := make(multi, 0, len(bells))
	for _, b := range bells {
		if b != nil {
			m = append(m, b)
		}
	}
	return m
}

// Ring passes rings to every bell. Bells must not modify the slice.
func (m multi) Ring(rings ...Ring) {
	for _, b := range m {
		b.Ring(rings...)
	}
}

// Run runs every bell's Run on its own goroutine. It returns only once ctx
// is done and all of them have returned, even when some return early (with
// no bells it just waits for ctx), so it behaves like one bell in a group
// that stops together.
func (m multi) Run(ctx context.Context) error {
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, b := range m {
		wg.Go(func() { errs[i] = b.Run(ctx) })
	}
	wg.Wait()
	<-ctx.Done()
	return errors.Join(errs...)
}
