package sim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fcmServer is a minimal FCM HTTP v1 endpoint (POST
// /v1/projects/{project}/messages:send) that hands every data message to the
// simulated device whose token it is addressed to, the way Google's servers
// and the phone's FCM client would. Unknown tokens get FCM's UNREGISTERED
// answer. It speaks just enough of the API for the firebase SDK the server
// uses; bridge/fcmtest is the full fake for tests.
type fcmServer struct {
	srv *http.Server
	ln  net.Listener

	mu      sync.RWMutex
	byToken map[string]func(map[string]string)

	delivered atomic.Int64
	unknown   atomic.Int64
}

func newFCMServer(addr string) (*fcmServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the fake FCM endpoint on %s: %w", addr, err)
	}
	f := &fcmServer{ln: ln, byToken: map[string]func(map[string]string){}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(ln)
	return f, nil
}

// Endpoint is the value for the server's --fcm-endpoint.
func (f *fcmServer) Endpoint() string { return "http://" + f.ln.Addr().String() + "/v1" }

func (f *fcmServer) register(token string, onPush func(map[string]string)) {
	f.mu.Lock()
	f.byToken[token] = onPush
	f.mu.Unlock()
}

func (f *fcmServer) close() { f.srv.Close() }

func (f *fcmServer) send(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message struct {
			Token string            `json:"token"`
			Data  map[string]string `json:"data"`
		} `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"code":400,"message":%q,"status":"INVALID_ARGUMENT"}}`, err.Error())
		return
	}
	f.mu.RLock()
	push := f.byToken[req.Message.Token]
	f.mu.RUnlock()
	if push == nil {
		f.unknown.Add(1)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",`+
			`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
		return
	}
	n := f.delivered.Add(1)
	push(req.Message.Data) // OnPush only queues a sync; it does not block
	fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, r.PathValue("project"), n)
}
