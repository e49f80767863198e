package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/publisher"
)

// maxLine bounds one input line: an event is at most 256 KiB encoded, and a
// line may carry whitespace besides.
const maxLine = 1 << 20

// line is one validated event of the input.
type line struct {
	ev   syncgate.Event
	n    int // line number, from 1
	size int // encoded bytes
}

// lineError is bad input at line N (exit status 2).
type lineError struct {
	n   int
	err error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.n, e.err) }

// readLines parses in line by line into out, which it closes at the end,
// after putting nil or the reading error into result. It stops early when
// done closes.
func readLines(in io.Reader, cfg *config, out chan<- line, result chan<- error, done <-chan struct{}) {
	defer close(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		ev, err := syncgate.DecodeEvent(text)
		if err == nil {
			if ev.Project == "" {
				ev.Project = cfg.Project
			}
			if ev.Collection == "" {
				ev.Collection = cfg.Collection
			}
		}
		var size int
		if err == nil {
			size, err = publisher.Check(ev)
		}
		if err != nil {
			result <- &lineError{n, err}
			return
		}
		select {
		case out <- line{ev: ev, n: n, size: size}:
		case <-done:
			result <- nil
			return
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d bytes", maxLine)
		}
		result <- &lineError{n + 1, err}
		return
	}
	result <- nil
}

// publishLines streams JSON lines from in and publishes them in batches:
// a batch goes out when it holds --batch events or 1 MiB, when no new line
// arrived for --linger, or at the end of the input. Batches are sent one at
// a time, in input order; the first failure stops the run.
func publishLines(ctx context.Context, cfg *config, p *publisher.Publisher, in io.Reader, stdout, stderr io.Writer) int {
	lines := make(chan line, cfg.Batch)
	result := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go readLines(in, cfg, lines, result, done)

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	start := time.Now()
	published, lastLine := 0, 0
	var batch []line
	size := 0

	linger := time.NewTimer(time.Hour)
	linger.Stop()
	var tick <-chan time.Time
	if cfg.Progress > 0 && !cfg.Quiet {
		t := time.NewTicker(cfg.Progress)
		defer t.Stop()
		tick = t.C
	}

	flush := func() int {
		linger.Stop()
		if len(batch) == 0 {
			return exitOK
		}
		evs := make([]syncgate.Event, len(batch))
		for i, l := range batch {
			evs[i] = l.ev
		}
		rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		offsets, err := p.Publish(rctx, evs...)
		cancel()
		if err != nil {
			what := fmt.Sprintf("the batch of lines %d-%d (%s)", batch[0].n, batch[len(batch)-1].n, events(len(batch)))
			code := failed(ctx, stderr, err, what)
			fmt.Fprintf(stderr, "publisher: %s before line %d published\n", events(published), batch[0].n)
			return code
		}
		published += len(batch)
		if cfg.Offsets {
			for _, off := range offsets {
				out.WriteString(off)
				out.WriteByte('\n')
			}
			if err := out.Flush(); err != nil {
				fmt.Fprintf(stderr, "publisher: writing offsets: %v\n", err)
				return exitUsage
			}
		}
		batch, size = batch[:0], 0
		return exitOK
	}

	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				break
			}
			lastLine = l.n
			if len(batch) > 0 && size+l.size+1 > publisher.MaxRequestBytes-64 {
				if code := flush(); code != exitOK {
					return code
				}
			}
			if len(batch) == 0 && cfg.Linger > 0 {
				linger.Reset(cfg.Linger)
			}
			batch = append(batch, l)
			size += l.size + 1
			if len(batch) >= cfg.Batch || cfg.Linger == 0 && len(lines) == 0 {
				if code := flush(); code != exitOK {
					return code
				}
			}
		case <-linger.C:
			if code := flush(); code != exitOK {
				return code
			}
		case <-tick:
			elapsed := time.Since(start)
			fmt.Fprintf(stderr, "publisher: %s published, %d lines read, %s, %.0f events/s\n",
				events(published), lastLine, elapsed.Round(time.Second), float64(published)/elapsed.Seconds())
		case <-ctx.Done():
			fmt.Fprintf(stderr, "publisher: interrupted; %s published, up to line %d\n", events(published), lastPublishedLine(batch, lastLine))
			return exitInterrupted
		}
	}
	if code := flush(); code != exitOK {
		return code
	}
	if err := <-result; err != nil {
		fmt.Fprintf(stderr, "publisher: %v\npublisher: %s before it published, none from it on\n", err, events(published))
		return exitInvalid
	}
	if !cfg.Quiet {
		elapsed := time.Since(start)
		fmt.Fprintf(stderr, "publisher: published %s in %s (%.0f events/s)\n",
			events(published), elapsed.Round(time.Millisecond), float64(published)/max(elapsed.Seconds(), 1e-9))
	}
	return exitOK
}

// lastPublishedLine is the last line number whose event was published.
func lastPublishedLine(pending []line, lastRead int) int {
	if len(pending) > 0 {
		return pending[0].n - 1
	}
	return lastRead
}

// events formats a count: "1 event", "3 events".
func events(n int) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// trimJSON drops surrounding whitespace from a document; empty means none.
func trimJSON(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	return b
}

// failed reports a failed publish of what and returns its exit status.
func failed(ctx context.Context, stderr io.Writer, err error, what string) int {
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "publisher: interrupted while publishing %s: %v\n", what, err)
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "publisher: %s: %v\n", what, err)
	switch {
	case errors.Is(err, publisher.ErrUncertain):
		fmt.Fprintf(stderr, "publisher: %s may or may not have been published\n", what)
		return exitUncertain
	case errors.Is(err, publisher.ErrUnavailable):
		fmt.Fprintf(stderr, "publisher: %s was not published; trying again is safe\n", what)
		return exitUnavailable
	case errors.Is(err, syncgate.ErrInvalidEvent):
		return exitInvalid
	}
	var pe *publisher.Error
	if errors.As(err, &pe) {
		fmt.Fprintf(stderr, "publisher: %s was not published\n", what)
		return exitRefused
	}
	return exitUnavailable
}
