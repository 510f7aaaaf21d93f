package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/server"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       server.DaemonConfig
		fcm       bridge.FCMConfig
		logFormat string
	)
	fs.StringVar(&cfg.DataDir, "data", "./doorbell-data", "data directory (database, generated tokens)")
	fs.StringVar(&cfg.HTTPAddr, "http", ":8080", "REST API listen address")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", ":1883", "MQTT broker listen address")
	fs.StringVar(&cfg.MQTTURL, "mqtt-url", "", "broker URL handed to agents at enrollment (default: tcp://<host the agent used>:<mqtt port>)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "operator token (default: generated on first start and kept in the data dir)")
	fs.StringVar(&cfg.EnrollToken, "enroll-token", "", "enrollment token (default: generated on first start and kept in the data dir)")
	fs.StringVar(&fcm.CredentialsFile, "fcm-credentials", "", "FCM service account JSON file")
	fs.StringVar(&fcm.ProjectID, "fcm-project", "", "FCM project id; unset turns the FCM doorbell off")
	fs.StringVar(&fcm.Endpoint, "fcm-endpoint", "", "FCM API endpoint (an emulator or test server; unauthenticated without --fcm-credentials)")
	fs.DurationVar(&fcm.TTL, "fcm-ttl", time.Hour, "how long FCM keeps an undelivered doorbell")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without an operator token (for a Prometheus scraper on a trusted network)")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(logFormat, stderr)
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Out = logger, stdout
	if fcm.ProjectID != "" || fcm.CredentialsFile != "" || fcm.Endpoint != "" {
		cfg.FCM = &fcm
	}
	d, err := server.NewDaemon(ctx, cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
