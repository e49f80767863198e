// Command publisher publishes syncgate change events from the shell: one
// event from flags, or a stream of JSON lines from a file or standard input,
// over a gateway's HTTP endpoint or straight into Redis. Run it with --help
// for the flags, examples and exit statuses; docs/publishing.md has more.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses; usageText documents them.
const (
	exitOK          = 0
	exitUsage       = 1
	exitInvalid     = 2
	exitRefused     = 3
	exitUnavailable = 4
	exitUncertain   = 5
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run publishes what args describe and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\nRun publisher --help for the flags and examples.\n", err)
		return exitUsage
	}
	p, closeP, err := openPublisher(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitUsage
	}
	defer closeP()
	if cfg.Type != "" {
		return publishOne(ctx, cfg, p, stdin, stdout, stderr)
	}
	in := stdin
	if cfg.File != "-" {
		f, err := os.Open(cfg.File)
		if err != nil {
			fmt.Fprintf(stderr, "publisher: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	return publishLines(ctx, cfg, p, in, stdout, stderr)
}
