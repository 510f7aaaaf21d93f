# Doorbell MDM. Two commands matter: `make run` and `make test`.
GO      ?= go
BIN     := bin/doorbell
APT_PKGS := mosquitto-clients mosquitto default-jdk-headless android-liblog-dev aapt chromium postgresql curl jq

.PHONY: run test build dist deps vet fmt-check clean aar bench scale

## run: start the server for a local try-out: plain HTTP and MQTT on loopback only
## (127.0.0.1:8080, 127.0.0.1:1883, data in ./doorbell-data). `doorbell serve` without
## flags is TLS on every interface; see docs/TRUST.md.
run:
	$(GO) run ./cmd/doorbell serve --tls off --http 127.0.0.1:8080 --mqtt 127.0.0.1:1883

## build: the single binary in bin/
build:
	$(GO) build -o $(BIN) ./cmd/doorbell

## dist: static binaries for Linux (amd64, arm64) and Android (arm64) in dist/
DIST_TARGETS := linux/amd64 linux/arm64 android/arm64
dist:
	@for t in $(DIST_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; out=dist/doorbell-$$os-$$arch; \
	  echo "building $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w' -o $$out ./cmd/doorbell || exit 1; \
	done

## test: install what the suite needs, then vet and run every test
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 12m ./...

## deps: Go modules, and Debian packages the tests use (installed when root). The
## PostgreSQL tests start their own throwaway cluster (server/store/postgres/pgtest);
## no main cluster is created for the package's own service (createcluster.d).
deps:
	$(GO) mod download
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    mkdir -p /etc/postgresql-common/createcluster.d; \
	    echo "create_main_cluster = off" > /etc/postgresql-common/createcluster.d/doorbell-tests.conf; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi

## bench: the fleet simulator's scenarios and the broker reference (DEVICES=2000 by default; not part of test)
bench: deps build
	DEVICES=$${DEVICES:-2000} BIN=$(BIN) scripts/bench.sh

# The scale-out run of docs/SCALING.md: DEVICES=30000 REPLICAS=3 make scale
# (the default, 300 devices over 3 replicas, fits a shared machine).
scale: deps build
	BIN=$(BIN) scripts/scale.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin dist/doorbell-linux-* dist/doorbell-android-*

## aar: the Android library (android/app/libs/doorbell.aar) for the app; needs the Android SDK and NDK
aar:
	@if [ -z "$$ANDROID_HOME" ] || [ -z "$$ANDROID_NDK_HOME" ]; then \
	  echo "make aar needs the Android SDK and NDK: set ANDROID_HOME and ANDROID_NDK_HOME (see docs/ANDROID.md)."; \
	  echo "They are not installed on this machine; the host-JVM binding test in make test checks the bindings instead."; \
	  exit 1; \
	fi
	$(GO) build -o bin/ golang.org/x/mobile/cmd/gobind golang.org/x/mobile/cmd/gomobile
	PATH="$(CURDIR)/bin:$$PATH" bin/gomobile bind -target=android -androidapi 26 -javapkg=org.doorbellmdm \
	  -o android/app/libs/doorbell.aar ./android
