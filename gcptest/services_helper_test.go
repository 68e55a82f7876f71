package gcptest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// serviceHelperEnv, set in a container's environment, makes the test
// binary serve HTTP as a Cloud Run service's container would, instead of
// running tests.
const serviceHelperEnv = "GCPTEST_SERVICE_HELPER"

func init() {
	if os.Getenv(serviceHelperEnv) != "" {
		os.Exit(serveHelper())
	}
}

// serveHelper listens on 127.0.0.1:$PORT and answers:
//
//	/        "$K_SERVICE $K_REVISION $MESSAGE"
//	/env     the environment Cloud Run sets, as JSON
//	/pid     its process ID
//	/proto   the request's protocol (it speaks HTTP/1.1 and h2c)
//	/ws      a WebSocket that echoes each message prefixed with "echo: "
//	/token   an ID token for ?audience= from the metadata server at
//	         $GCE_METADATA_HOST
//	/sleep   an answer after ?d= (a duration)
//	/status  an empty answer with status ?code=
//	/exit    exits 0 after answering
//
// It logs "listening on $PORT" on stdout and a line for each request,
// and exits 4 after two minutes so that no test leaves it behind.
func serveHelper() int {
	port := os.Getenv("PORT")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", os.Getenv("K_SERVICE"), os.Getenv("K_REVISION"), os.Getenv("MESSAGE"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "GCE_METADATA_HOST", "MESSAGE"} {
			env[k] = os.Getenv(k)
		}
		json.NewEncoder(w).Encode(env)
	})
	mux.HandleFunc("/proto", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		u := "http://" + os.Getenv("GCE_METADATA_HOST") + "/computeMetadata/v1/instance/service-accounts/default/identity?audience=" + url.QueryEscape(r.URL.Query().Get("audience"))
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
		req.Header.Set("Metadata-Flavor", "Google")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
			fmt.Fprint(w, "slept")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	})
	done := make(chan int, 1)
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "bye")
		done <- 0
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Method + " " + r.URL.Path)
		mux.ServeHTTP(w, r)
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: logged, Protocols: &protos}
	go func() {
		fmt.Println("listening on " + port)
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			done <- 1
		}
	}()
	select {
	case code := <-done:
		time.Sleep(50 * time.Millisecond)
		srv.Shutdown(context.Background())
		return code
	case <-time.After(2 * time.Minute):
		return 4
	}
}
