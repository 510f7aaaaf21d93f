package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/escalate"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       daemon.DaemonConfig
		fcm       bridge.FCMConfig
		logFormat string
		logger    *slog.Logger
		err       error
		allowlist string
		pprofAddr string
	)
	fs.StringVar(&cfg.DataDir, "data", "./doorbell-data", "data directory (database, generated tokens)")
	fs.StringVar(&cfg.Store, "store", "", "shared store of several replicas: a postgres:// URL (default: bbolt in the data dir; see docs/SCALING.md)")
	fs.StringVar(&cfg.HTTPAddr, "http", ":8080", "REST API listen address")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", ":1883", "MQTT broker listen address")
	fs.StringVar(&cfg.MQTTURL, "mqtt-url", "", "broker URL handed to agents at enrollment (default: tcp://<host the agent used>:<mqtt port>)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "operator token (default: generated on first start and kept in the data dir)")
	fs.StringVar(&cfg.EnrollToken, "enroll-token", "", "enrollment token (default: generated on first start and kept in the data dir)")
	fs.StringVar(&fcm.CredentialsFile, "fcm-credentials", "", "FCM service account JSON file")
	fs.StringVar(&fcm.ProjectID, "fcm-project", "", "FCM project id; unset turns the FCM doorbell off")
	fs.StringVar(&fcm.Endpoint, "fcm-endpoint", "", "FCM API endpoint (an emulator or test server; unauthenticated without --fcm-credentials)")
	fs.DurationVar(&fcm.TTL, "fcm-ttl", time.Hour, "how long FCM keeps an undelivered doorbell")
	fs.DurationVar(&fcm.SendTimeout, "fcm-send-timeout", bridge.DefaultFCMSendTimeout, "deadline of one FCM batch send; an unanswered message is retried")
	fs.IntVar(&fcm.Parallel, "fcm-parallel", bridge.DefaultFCMParallel, "FCM batches in flight at once")
	fs.StringVar(&cfg.WebhookURL, "webhook-url", "", "POST every device state transition here as signed JSON (optional)")
	fs.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "HMAC-SHA256 key signing webhook events (X-Doorbell-Signature: sha256=<hex>)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	tlsFlags := addTLSFlags(fs)
	fs.DurationVar(&cfg.ReportSkew, "report-skew", daemon.DefaultReportSkew, "how far a report's reportedAt may be from the server's clock")
	fs.BoolVar(&cfg.RequireReportNonce, "require-report-nonce", false, "refuse reports without reportedAt and nonce (capability-1 agents)")
	fs.IntVar(&cfg.EnrollPerMinute, "enroll-rate", daemon.DefaultEnrollPerMinute, "enrollments per minute per remote IP (negative: no limit)")
	fs.IntVar(&cfg.DevicePerMinute, "device-rate", daemon.DefaultDevicePerMinute, "device API requests per minute per device (negative: no limit)")
	fs.IntVar(&cfg.MQTTMaxConnections, "mqtt-max-connections", 0, "concurrent MQTT connections (0: 50,000 or less, as the file descriptor limit allows; larger values are lowered to that too; negative: no limit)")
	fs.IntVar(&cfg.HTTPMaxConnections, "http-max-connections", 0, "concurrent HTTP connections; one more is answered 503 and closed (0: 50,000 or less, as the file descriptor limit allows; larger values are lowered to that too; negative: no limit)")
	fs.DurationVar(&cfg.SlowSubscriberTimeout, "mqtt-slow-subscriber-timeout", broker.DefaultSlowSubscriberTimeout, "disconnect an operator MQTT session that has not read its doorbells for this long (negative: never; its doorbells are dropped either way)")
	fs.StringVar(&allowlist, "agent-allowlist", "", "file of approved agent binary SHA-256s, one hex digest per line, # comments (unset: integrity unchecked)")
	fs.StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this address (debugging; off by default)")
	fs.DurationVar(&cfg.EscalationInterval, "escalation-interval", escalate.DefaultInterval, "how often the groups' escalation rules (notifyAfter, commandAfter) are evaluated")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without an operator token (for a Prometheus scraper on a trusted network)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.EscalationInterval <= 0 {
		return errors.New("serve: --escalation-interval must be positive")
	}
	if cfg.TLS, err = tlsFlags.config(); err != nil {
		return err
	}
	logger, err = newLogger(logFormat, stderr)
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Out = logger, stdout
	if allowlist != "" {
		if cfg.AgentAllowlist, err = daemon.LoadAllowlist(allowlist); err != nil {
			return err
		}
	}
	if pprofAddr != "" {
		if err := startPprof(ctx, pprofAddr, logger); err != nil {
			return err
		}
	}
	if fcm.ProjectID != "" || fcm.CredentialsFile != "" || fcm.Endpoint != "" {
		cfg.FCM = &fcm
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	d, err := daemon.NewDaemon(ctx, cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
