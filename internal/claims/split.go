package claims

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
)

// splitMin is the least history, in commits still to walk, worth a second git: below
// it the second walk would cost more to start than it saves. 0 turns splitting off.
var splitMin = defaultSplitMin()

// defaultSplitMin turns splitting off on one core, where the second git could only
// take turns with the first.
func defaultSplitMin() int {
	if runtime.NumCPU() < 2 {
		return 0
	}
	return 20_000
}

// splitWait makes the first walk wait for the first-parent line before its first
// record, so that tests take the split whatever the timing. Never set outside tests.
var splitWait = false

// splitter lets a cold walk of a long history use a second core. The walk's git log
// spends nearly all its time diffing trees, commit by commit; a `git rev-list
// --first-parent` that diffs nothing lists the line from the head long before the
// walk is through it. Then a second git log starts halfway down what is left, at S,
// and the first stops when it reaches S: the walk takes the second's records, which
// are exactly those the first would have listed. That holds because the split is
// only taken while the first walk has listed nothing but the line itself, one parent
// each: git then has only S's parents left to list, as the second has after S. A
// merge, or any record off the line, abandons the split and the first walk goes on
// alone, as without it.
type splitter struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	line   chan []string // the first-parent line from the head, once the finder has it
	ids    []string      // that line, once received
	listed []string      // the first walk's records until then
	at     string        // S, once the second walk has started
	off    bool          // abandoned: the first walk goes on alone
	second chan splitResult
	start  func()
}

type splitResult struct {
	recs []*record
	err  error
}

func startSplit(ctx context.Context, repo Repo, w *walk, head string, from func(...string) []string) *splitter {
	ctx, cancel := context.WithCancel(ctx)
	s := &splitter{cancel: cancel, line: make(chan []string, 1), second: make(chan splitResult, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var ids []string
		err := repo.Stream(ctx, func(r io.Reader) error {
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				ids = append(ids, sc.Text())
			}
			return sc.Err()
		}, "rev-list", "--first-parent", head, "--")
		if err != nil {
			ids = nil // no split: the first walk does it all
		}
		s.line <- ids
	}()
	s.start = func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var recs []*record
			err := repo.Stream(ctx, func(r io.Reader) error {
				return parse(r, w.index, w.newSet, func(rec *record) bool {
					recs = append(recs, rec)
					return false
				})
			}, from(s.at)...)
			s.second <- splitResult{recs, err}
		}()
	}
	return s
}

// reached is called with each record of the first walk before it is used: it says
// whether the first walk has reached S, where the second walk takes over.
func (s *splitter) reached(rec *record) bool {
	if s.off {
		return false
	}
	if s.ids == nil {
		var ids []string
		if splitWait {
			ids = <-s.line
		} else {
			select {
			case ids = <-s.line:
			default:
				s.listed = append(s.listed, rec.commit)
				s.offLine(rec)
				return false
			}
		}
		n := len(s.listed)
		if len(ids) < n+1 || !slices.Equal(ids[:n], s.listed) {
			s.abandon()
			return false
		}
		s.ids, s.listed = ids[n:], nil // from here on, the line still ahead
	}
	if len(s.ids) == 0 || s.ids[0] != rec.commit {
		s.abandon()
		return false
	}
	switch {
	case s.at == rec.commit:
		return true
	case len(rec.parents) > 1:
		s.abandon()
		return false
	case s.at == "":
		rest := len(s.ids)
		if rest < max(splitMin, 2) {
			s.abandon()
			return false
		}
		s.at = s.ids[rest/2]
		s.start()
	}
	s.ids = s.ids[1:]
	return false
}

// offLine abandons the split at a merge above S: its other parents' commits can
// come after S.
func (s *splitter) offLine(rec *record) {
	if len(rec.parents) > 1 {
		s.abandon()
	}
}

func (s *splitter) abandon() {
	s.off = true
	s.cancel()
}

// rest returns the second walk's records, S first.
func (s *splitter) rest() ([]*record, error) {
	r := <-s.second
	if r.err != nil {
		return nil, fmt.Errorf("walking history from %s: %w", s.at, r.err)
	}
	if len(r.recs) == 0 || r.recs[0].commit != s.at {
		return nil, fmt.Errorf("walking history from %s: %w", s.at, errFormat)
	}
	return r.recs, nil
}

// stop ends the finder and the second walk, whatever they are doing, and waits for
// their gits to be gone. Both send into buffered channels, so neither blocks.
func (s *splitter) stop() {
	s.cancel()
	s.wg.Wait()
}
