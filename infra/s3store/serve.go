package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	bolt "go.etcd.io/bbolt"
)

func serve(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := flags.String("addr", "127.0.0.1:9000", "listen address (loopback only, by Vigil's rule)")
	dbPath := flags.String("db", "", "the bbolt file holding every bucket and object")
	credsPath := flags.String("credentials", "", "JSON file with access_key and secret_key")
	bucket := flags.String("bucket", "", "bucket to create at start if it does not exist")
	flags.Parse(args)

	creds, err := readCredentials(*credsPath)
	if err != nil {
		return err
	}
	// A timeout, not bbolt's default wait forever: a second server on the same file (a stale
	// process) must fail loudly instead of hanging the start-up.
	db, err := bolt.Open(*dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	backend := s3bolt.New(db)
	if *bucket != "" {
		exists, err := backend.BucketExists(*bucket)
		if err != nil {
			return err
		}
		if !exists {
			if err := backend.CreateBucket(*bucket); err != nil {
				return err
			}
		}
	}
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(gofakes3.StdLog(log.New(os.Stderr, "", log.LstdFlags), gofakes3.LogErr, gofakes3.LogWarn)))

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: requireSigV4(creds, faker.Server()), ReadHeaderTimeout: 30 * time.Second}
	// SIGTERM (vigil.procs.stop) closes the listener and lets requests in flight finish, so the
	// bbolt file is closed cleanly; a SIGKILL loses nothing committed either.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	log.Printf("s3store: serving %s on http://%s (bucket %q)", *dbPath, listener.Addr(), *bucket)
	if err := server.Serve(listener); err != http.ErrServerClosed {
		return err
	}
	log.Printf("s3store: stopped")
	return nil
}
