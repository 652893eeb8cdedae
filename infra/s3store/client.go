package main

// The client side, for vigil/object_store.py: the AWS SDK signs every request exactly as other
// S3 clients do, so these commands also exercise the server's signature check.
//   ls:  one JSON object per line {"key", "size", "last_modified" (RFC 3339, UTC)}
//   get: the object's bytes on stdout;  put: stdin stored as the object;  mb: create the bucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func client(command string, args []string) error {
	flags := flag.NewFlagSet(command, flag.ExitOnError)
	endpoint := flags.String("endpoint", "http://127.0.0.1:9000", "the store's URL")
	credsPath := flags.String("credentials", "", "JSON file with access_key and secret_key")
	prefix := flags.String("prefix", "", "ls: only keys starting with this")
	flags.Parse(args)
	creds, err := readCredentials(*credsPath)
	if err != nil {
		return err
	}
	rest := flags.Args()
	if len(rest) < 1 || (command == "get" || command == "put") && len(rest) != 2 {
		return fmt.Errorf("%s: BUCKET%s expected", command, map[bool]string{true: " KEY", false: ""}[command == "get" || command == "put"])
	}
	bucket := rest[0]
	api := s3.New(s3.Options{
		BaseEndpoint: aws.String(*endpoint),
		UsePathStyle: true, // one host, buckets in the path (as Flink is configured)
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKey, creds.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	switch command {
	case "ls":
		return list(ctx, api, bucket, *prefix)
	case "get":
		out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &rest[1]})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		_, err = io.Copy(os.Stdout, out.Body)
		return err
	case "put":
		// read whole: the SDK needs a seekable body to sign its hash (objects here are small)
		body, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		_, err = api.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &rest[1], Body: bytes.NewReader(body)})
		return err
	case "mb":
		_, err := api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
		var owned *types.BucketAlreadyOwnedByYou
		var exists *types.BucketAlreadyExists
		if errors.As(err, &owned) || errors.As(err, &exists) {
			return nil
		}
		return err
	}
	return nil
}

func list(ctx context.Context, api *s3.Client, bucket, prefix string) error {
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	out := json.NewEncoder(os.Stdout)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, object := range page.Contents {
			if err := out.Encode(map[string]any{
				"key": aws.ToString(object.Key), "size": aws.ToInt64(object.Size),
				"last_modified": aws.ToTime(object.LastModified).UTC().Format(time.RFC3339Nano),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
