package gantry

import "sync"

// BeforeCloser runs functions when its Runtime is closed, before anything
// is released: while they run the Runtime still works. Every backend of
// this module implements it; call it through the package-level
// BeforeClose.
type BeforeCloser interface {
	// BeforeClose arranges for f to run at the start of Close. The
	// returned stop unregisters f; it reports whether it did so before
	// f started (so exactly one of stop's caller and Close runs the
	// work), as context.AfterFunc's stop does. On a Runtime that is
	// closed or closing, it returns ErrClosed and f never runs.
	BeforeClose(f func()) (stop func() bool, err error)
}

// BeforeClose arranges for f to run when rt is closed, before rt releases
// anything (see BeforeCloser). This is how a cleanup that a test
// registers with t.Cleanup still runs when the test's deferred rt.Close
// comes first:
//
//	stop, err := gantry.BeforeClose(rt, removeIt)
//	t.Cleanup(func() {
//		if err != nil || stop() {
//			removeIt()
//		}
//	})
//
// A backend without BeforeCloser gives ErrNotSupported.
func BeforeClose(rt Runtime, f func()) (stop func() bool, err error) {
	if b, ok := rt.(BeforeCloser); ok {
		return b.BeforeClose(f)
	}
	return nil, unsupported(rt, "before close")
}

// CloseState is the closed state every backend keeps the same way, for
// backend implementers: Close is idempotent, runs the BeforeClose
// functions first (newest first, as deferred calls), then releases; from
// the moment Close begins, Err reports ErrClosed, so every method fails at
// once. The zero value is open.
type CloseState struct {
	mu      sync.Mutex
	started bool          // Close has been called
	closing bool          // the BeforeClose functions have run
	done    chan struct{} // closed when the first Close has finished
	ended   chan struct{} // closed when Close begins
	hooks   []*closeHook
}

type closeHook struct {
	f       func()
	removed bool
	started bool
}

func (s *CloseState) init() {
	if s.ended == nil {
		s.ended = make(chan struct{})
		s.done = make(chan struct{})
	}
}

// Err returns ErrClosed once Close has begun, else nil.
func (s *CloseState) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	return nil
}

// Closing returns a channel that is closed when Close begins, after the
// BeforeClose functions have run: pending waits select on it.
func (s *CloseState) Closing() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.ended
}

// BeforeClose implements BeforeCloser.
func (s *CloseState) BeforeClose(f func()) (stop func() bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	h := &closeHook{f: f}
	s.hooks = append(s.hooks, h)
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if h.started || h.removed {
			return false
		}
		h.removed = true
		return true
	}, nil
}

// Close runs the BeforeClose functions, marks the state closed and calls
// release, once; it returns release's error. Later calls wait for the
// first to finish and return nil.
func (s *CloseState) Close(release func() error) error {
	s.mu.Lock()
	s.init()
	if s.started {
		done := s.done
		s.mu.Unlock()
		<-done
		return nil
	}
	s.started = true
	s.mu.Unlock()
	// The functions run while the Runtime still works. New ones may be
	// registered while they run (a cleanup that starts another); run
	// until none is left.
	for {
		s.mu.Lock()
		var h *closeHook
		for i := len(s.hooks) - 1; i >= 0; i-- {
			if c := s.hooks[i]; !c.removed && !c.started {
				h = c
				break
			}
		}
		if h == nil {
			s.closing = true
			s.hooks = nil
			close(s.ended)
			s.mu.Unlock()
			break
		}
		h.started = true
		s.mu.Unlock()
		h.f()
	}
	err := release()
	close(s.done)
	return err
}
