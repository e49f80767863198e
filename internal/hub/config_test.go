package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/backplane"
	"github.com/syncgate/syncgate/internal/hub"
)

// TestConfigRefusesNegatives: a negative limit or duration is an error that
// names the field and the value, not a silent default; zero is the default.
func TestConfigRefusesNegatives(t *testing.T) {
	for _, tc := range []struct {
		cfg  hub.Config
		want string // "" means New succeeds
	}{
		{hub.Config{}, ""},
		{hub.Config{MaxConnections: 0, MaxSubscriptions: 1, AuthTimeout: time.Millisecond}, ""},
		{hub.Config{MaxSubscriptions: -1}, "Config.MaxSubscriptions=-1: must not be negative"},
		{hub.Config{MaxQueueBytes: -8}, "Config.MaxQueueBytes=-8"},
		{hub.Config{MaxPendingEvents: -2}, "Config.MaxPendingEvents=-2"},
		{hub.Config{MaxMessageBytes: -3}, "Config.MaxMessageBytes=-3"},
		{hub.Config{MaxConnections: -1}, "Config.MaxConnections=-1"},
		{hub.Config{AuthTimeout: -time.Second}, "Config.AuthTimeout=-1s"},
		{hub.Config{WriteTimeout: -time.Millisecond}, "Config.WriteTimeout=-1ms"},
		{hub.Config{PingInterval: -time.Minute}, "Config.PingInterval=-1m0s"},
	} {
		tc.cfg.Verifier = verifier{}
		_, err := hub.New(tc.cfg, backplane.NewMemory(backplane.MemoryConfig{}))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want no error", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}
