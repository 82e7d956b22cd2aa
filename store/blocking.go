package store

import "context"

// QueryFunc runs one read for a blocking query. It returns the index of the
// answer it computed and a channel that closes when that answer may have
// changed. The answer itself is captured by the closure.
type QueryFunc func() (index uint64, watch <-chan struct{}, err error)

// Blocking runs query until the answer's index exceeds minIndex, the query
// fails, or ctx ends (its deadline is the caller's `wait`). It returns the
// index of the last answer computed; the closure holds that answer. With
// minIndex 0 it runs the query once. A restore of the whole store wakes every
// waiter to re-run.
//
// This is the one long-poll loop in the project: every blocking endpoint
// goes through it.
func (s *Store) Blocking(ctx context.Context, minIndex uint64, query QueryFunc) (uint64, error) {
	for {
		abandon := s.AbandonCh()
		idx, watch, err := query()
		if err != nil || minIndex == 0 || idx > minIndex {
			return idx, err
		}
		// An index that went backwards (a restore from an older snapshot)
		// must not make the caller wait forever.
		if idx < minIndex && idx > 0 {
			return idx, nil
		}
		select {
		case <-watch:
		case <-abandon:
		case <-ctx.Done():
			return idx, nil
		}
	}
}
