package main

import (
	"context"
	"fmt"
	"io"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/publisher"
)

// publishOne publishes the event the flags describe and prints its offset.
func publishOne(ctx context.Context, cfg *config, p *publisher.Publisher, stdin io.Reader, stdout, stderr io.Writer) int {
	doc, err := readDocument("document", cfg.Document, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitInvalid
	}
	old, err := readDocument("old-document", cfg.OldDocument, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitInvalid
	}
	ev := syncgate.Event{Type: cfg.Type, Project: cfg.Project, Collection: cfg.Collection,
		DocumentID: cfg.ID, Document: trimJSON(doc), OldDocument: trimJSON(old), Actor: cfg.Actor}
	if _, err := publisher.Check(ev); err != nil {
		fmt.Fprintf(stderr, "publisher: %v\n", err)
		return exitInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	offsets, err := p.Publish(ctx, ev)
	if err != nil {
		return failed(ctx, stderr, err, "the event")
	}
	fmt.Fprintln(stdout, offsets[0])
	return exitOK
}
