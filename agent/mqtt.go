package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/proto"
)

const (
	mqttConnectTimeout   = 15 * time.Second
	mqttSubscribeTimeout = 30 * time.Second
	mqttKeepAlive        = 60 * time.Second
	mqttQuiesce          = 250 // ms to finish in-flight work on disconnect
)

// mqttLoop keeps one MQTT session to the broker while the agent has an
// identity, until ctx is done.
//
// Reconnection is ours, not paho's: AutoReconnect and ConnectRetry are off
// and every session is a fresh client. Paho's backoff is not jittered, so a
// broker restart would bring the whole fleet back in lockstep; this loop
// waits out a backoff.Backoff (exponential, ±50% jitter) between attempts. A
// fresh client per session also makes a re-enrolled identity's credentials
// take effect at once.
func (a *Agent) mqttLoop(ctx context.Context) {
	retry := mqttBackoff(a.rnd)
	waitFirst := false // the last session or attempt failed: back off first
	refused := false   // the last attempt's login was refused
	next := 0          // which of several broker URLs to try
	for {
		if waitFirst {
			t := a.clock.NewTimer(retry.Next())
		wait:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
					break wait
				case <-a.idChanged:
					t.Stop()
					retry.Reset()
					break wait
				case <-a.syncOK:
					// The server answered a sync: it is up again, so stop
					// waiting out a backoff that grew during its outage. Not
					// after a refused login, which the sync did not change.
					if refused {
						continue
					}
					t.Stop()
					a.log.Debug("HTTP sync succeeded; reconnecting MQTT now")
					break wait
				}
			}
		}
		// Only a sync that succeeds while waiting cuts the wait short.
		select {
		case <-a.syncOK:
		default:
		}
		id, ok := a.currentIdentity()
		brokers := a.cfg.MQTTURL
		if brokers == "" {
			brokers = id.MQTTURL
		}
		var brokerURL string
		if list := brokerURLs(brokers); len(list) > 0 {
			brokerURL = list[next%len(list)]
		}
		if !ok || brokerURL == "" {
			if ok {
				a.log.Warn("no MQTT broker URL; doorbell over MQTT is off until the identity changes", "deviceId", id.DeviceID)
			}
			select {
			case <-ctx.Done():
				return
			case <-a.idChanged:
				retry.Reset()
				waitFirst = false
				continue
			}
		}

		s, err := a.dialMQTT(ctx, id, brokerURL)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			waitFirst = true
			refused = isMQTTLoginRefused(err)
			next++
			a.log.Warn("MQTT connect failed", "deviceId", id.DeviceID, "broker", brokerURL, "err", err, "attempt", retry.Attempts()+1)
			if refused {
				// Perhaps the device was revoked: a sync finds out (404)
				// and enrolls again if it has an enrollment token.
				a.Trigger()
			}
			continue
		}
		refused = false
		retry.Reset() // connected: the next loss starts from the first delay
		a.log.Info("MQTT connected", "deviceId", id.DeviceID, "broker", brokerURL)
		waitFirst = a.waitSession(ctx, s, id)
		if waitFirst {
			next++ // the session was lost: its broker may be gone
		}
		s.close()
		if ctx.Err() != nil {
			return
		}
	}
}

// waitSession blocks until the session is lost, the identity's credentials
// change, or ctx is done. It reports whether the session was lost (wait
// before reconnecting) rather than ended on purpose.
func (a *Agent) waitSession(ctx context.Context, s *mqttSession, id Identity) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case err := <-s.lost:
			a.log.Warn("MQTT connection lost", "deviceId", id.DeviceID, "err", err)
			return true
		case <-a.idChanged:
			cur, ok := a.currentIdentity()
			if ok && cur.DeviceID == id.DeviceID && cur.DeviceSecret == id.DeviceSecret && cur.MQTTURL == id.MQTTURL && cur.Topic == id.Topic {
				continue // e.g. only the push token changed
			}
			a.log.Info("identity changed; reconnecting MQTT", "deviceId", cur.DeviceID)
			return false
		}
	}
}

// mqttSession is one connected paho client.
type mqttSession struct {
	client mqtt.Client
	lost   chan error // receives once when the session is unusable

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup // running OnConnect handlers
}

// enter registers a running handler; false once the session is closing.
func (s *mqttSession) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

func (s *mqttSession) fail(err error) {
	select {
	case s.lost <- err:
	default:
	}
}

// close disconnects and waits for the handlers the session started.
func (s *mqttSession) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.client.IsConnectionOpen() {
		s.client.Disconnect(mqttQuiesce)
	}
	s.handlers.Wait()
}

// dialMQTT connects one session: client id = username = device id, password
// = device secret, clean session. It subscribes to the device's topic in
// OnConnect and triggers a sync once subscribed, so no doorbell rung before
// the subscription is missed.
func (a *Agent) dialMQTT(ctx context.Context, id Identity, brokerURL string) (*mqttSession, error) {
	topic := id.Topic
	if topic == "" {
		topic = proto.PolicyChangedTopic(id.DeviceID)
	}
	s := &mqttSession{lost: make(chan error, 1)}
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(id.DeviceID).
		SetUsername(id.DeviceID).
		SetPassword(id.DeviceSecret).
		SetCleanSession(true).
		SetProtocolVersion(4). // MQTT 3.1.1, no silent fallback to 3.1
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(mqttConnectTimeout).
		SetKeepAlive(mqttKeepAlive).
		// Cancel cancels a dial in progress when ctx is done (the
		// handshake after it is bounded by the connect timeout).
		SetDialer(&net.Dialer{Timeout: mqttConnectTimeout, Cancel: ctx.Done()}).
		SetCustomOpenConnectionFn(a.openMQTT(ctx)).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { s.fail(err) }).
		SetOnConnectHandler(func(c mqtt.Client) {
			if !s.enter() {
				return
			}
			defer s.handlers.Done()
			tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
				a.handleDoorbell(m.Payload())
			})
			if !tok.WaitTimeout(mqttSubscribeTimeout) {
				s.fail(fmt.Errorf("subscribing to %s: timed out", topic))
				return
			}
			if err := tok.Error(); err != nil {
				s.fail(fmt.Errorf("subscribing to %s: %w", topic, err))
				return
			}
			if st, ok := tok.(*mqtt.SubscribeToken); ok {
				if r, ok := st.Result()[topic]; ok && r >= 0x80 {
					s.fail(fmt.Errorf("subscribing to %s: refused by the broker", topic))
					return
				}
			}
			a.log.Debug("subscribed", "topic", topic)
			a.Trigger() // every (re)connect syncs
		})
	s.client = mqtt.NewClient(opts)
	tok := s.client.Connect()
	<-tok.Done() // bounded by the dial cancel and the connect timeout
	if err := tok.Error(); err != nil {
		s.close()
		return nil, err
	}
	if ctx.Err() != nil {
		s.close()
		return nil, ctx.Err()
	}
	return s, nil
}

// handleDoorbell handles a message on the device's topic. A message it
// cannot read still triggers a sync: the bell only wakes the agent, and a
// needless sync costs a 304.
func (a *Agent) handleDoorbell(payload []byte) {
	var d proto.Doorbell
	if err := json.Unmarshal(payload, &d); err != nil {
		a.log.Warn("unreadable doorbell; syncing anyway", "err", err)
		a.ring(0, "mqtt")
		return
	}
	if d.Type == proto.DoorbellRefreshInventory {
		a.RefreshInventory()
		return
	}
	if d.Type == proto.CommandDoorbellType {
		a.log.Info("command doorbell", "source", "mqtt")
		a.Trigger()
		return
	}
	if d.Type != proto.DoorbellType {
		a.log.Debug("ignoring MQTT message", "type", d.Type)
		return
	}
	a.ring(d.Version, "mqtt")
}

// brokerURLs splits a comma-separated list of broker URLs, dropping empty
// entries.
func brokerURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
