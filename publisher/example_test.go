package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/syncgate/syncgate"
	"github.com/syncgate/syncgate/internal/auth"
	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
	"github.com/syncgate/syncgate/internal/server"
	"github.com/syncgate/syncgate/publisher"
)

// exampleGateway starts an in-process gateway for the examples (in real
// use, the gateway runs on its own) and returns its URL, its publish key
// and a function that stops it.
func exampleGateway() (url, key string, stop func()) {
	v, err := auth.NewVerifier(auth.Config{Secret: []byte("example-secret-0123456789abcdef0123")})
	if err != nil {
		panic(err)
	}
	bp := backplane.NewMemory(backplane.MemoryConfig{})
	h, err := hub.New(hub.Config{Verifier: v, Logger: slog.New(slog.DiscardHandler)}, bp)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Start(ctx); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(server.Handler(server.Config{Hub: h, Publisher: bp, Keys: auth.ParseKeys("example-key"), Logger: slog.New(slog.DiscardHandler)}))
	return srv.URL, "example-key", func() {
		srv.Close()
		cancel()
		_ = bp.Close()
	}
}

func ExampleNew() {
	gatewayURL, publishKey, stop := exampleGateway()
	defer stop()

	// One Publisher per process; it keeps connections to the gateway alive.
	p, err := publisher.New(publisher.Config{URL: gatewayURL, Key: publishKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Right after saving to the database:
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offset, err := p.DocumentUpdated(ctx, "p1", "events", "event-123", "user-42",
		map[string]string{"title": "Launch"}, // new state
		map[string]string{"title": "Draft"},  // old state
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published:", offset != "")
	// Output: published: true
}

func ExamplePublisher_Publish() {
	gatewayURL, publishKey, stop := exampleGateway()
	defer stop()
	p, err := publisher.New(publisher.Config{URL: gatewayURL, Key: publishKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Several changes of one transaction go in one request: all or nothing.
	var events []syncgate.Event
	for _, id := range []string{"41", "42"} {
		ev, err := publisher.NewEvent(syncgate.TypeUpdate, "p1", "orders", id,
			map[string]string{"status": "paid"}, map[string]string{"status": "open"},
			publisher.WithActor("billing"))
		if err != nil {
			log.Fatal(err)
		}
		events = append(events, ev)
	}
	offsets, err := p.Publish(context.Background(), events...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(offsets), "offsets")
	// Output: 2 offsets
}

func ExampleError() {
	gatewayURL, publishKey, stop := exampleGateway()
	defer stop()
	p, err := publisher.New(publisher.Config{URL: gatewayURL, Key: publishKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Refused before anything is sent, with the gateway's own message.
	_, err = p.Insert(context.Background(), "p1", "order items", "1", map[string]int{"qty": 2})
	var pe *publisher.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Code)
		fmt.Println(pe.Message)
	}

	// Refused by the gateway: the status and code come back.
	bad, _ := publisher.New(publisher.Config{URL: gatewayURL, Key: "not-the-key"})
	defer bad.Close()
	_, err = bad.DocumentDeleted(context.Background(), "p1", "events", "event-123", "user-42")
	if errors.As(err, &pe) {
		fmt.Println(pe.StatusCode, pe.Code)
	}
	// Output:
	// bad_request
	// invalid event: collection "order items" must match [A-Za-z0-9_.-]{1,128}
	// 401 unauthorized
}

func ExamplePublisher_NewBatcher() {
	gatewayURL, publishKey, stop := exampleGateway()
	defer stop()
	p, err := publisher.New(publisher.Config{URL: gatewayURL, Key: publishKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Events enqueued within 5ms share one request. Failures go to OnError
	// and to Flush/Close; nothing is dropped silently.
	b := p.NewBatcher(publisher.BatcherConfig{
		Window: 5 * time.Millisecond,
		OnError: func(events []syncgate.Event, err error) {
			log.Printf("%d events not published: %v", len(events), err)
		},
	})
	for i := range 100 {
		ev, _ := publisher.NewEvent(syncgate.TypeInsert, "p1", "audit", fmt.Sprint(i), map[string]int{"n": i}, nil)
		if err := b.Enqueue(context.Background(), ev); err != nil {
			log.Fatal(err) // invalid event, queue full past the context, or closed
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println("close:", b.Close(ctx)) // publishes what is queued
	// Output: close: <nil>
}
