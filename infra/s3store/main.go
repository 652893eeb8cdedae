// Command s3store is Vigil's local S3-compatible object store: the checkpoint and savepoint store
// of the local Flink cluster (docs/adr/0014-checkpoint-and-savepoint-store.md), built and run by
// vigil/object_store.py. It also lists, reads and writes objects as a client (the same signed
// requests any S3 client sends), so Python needs no S3 library.
//
//	s3store serve -addr 127.0.0.1:9000 -db DIR/objects.bolt -credentials FILE -bucket NAME
//	s3store ls|get|put|mb -endpoint URL -credentials FILE BUCKET [KEY | -prefix P]
//
// The server is gofakes3 (an S3 API in Go) over its bolt backend: every object lives in one bbolt
// file that is fsynced on each write, so what was acknowledged survives a killed server. gofakes3
// does not check signatures; the `serve` command verifies SigV4 itself (auth.go) against the
// key pair in the credentials file.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// keyPair is the JSON file vigil/object_store.py writes (mode 0600) into the state folder.
type keyPair struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func readCredentials(path string) (keyPair, error) {
	var c keyPair
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return c, fmt.Errorf("%s: access_key and secret_key are required", path)
	}
	return c, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: s3store serve|ls|get|put|mb [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "ls", "get", "put", "mb":
		err = client(os.Args[1], os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3store:", err)
		os.Exit(1)
	}
}
