package main

// SigV4 header authentication (AWS Signature Version 4, as every S3 SDK signs), checked in front
// of gofakes3, which accepts any request. What is verified: the access key, and the signature over
// method, path, query, the signed headers and the payload hash the client declares
// (x-amz-content-sha256). Not verified: that the body matches that declared hash, or the
// per-chunk signatures of streaming uploads; presigned (query-string) URLs are refused. gofakes3
// itself refuses requests whose x-amz-date is off by more than its skew limit, which bounds replays.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

const algorithm = "AWS4-HMAC-SHA256"

func requireSigV4(creds keyPair, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, message := verify(creds, r); code != "" {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`,
				code, message)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// verify returns an S3 error code and message, or "" when the request is signed with our key.
func verify(creds keyPair, r *http.Request) (string, string) {
	header := r.Header.Get("Authorization")
	if !strings.HasPrefix(header, algorithm+" ") {
		return "AccessDenied", "only SigV4 header-signed requests are accepted"
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(header, algorithm+" "), ",") {
		if key, value, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			fields[key] = value
		}
	}
	scope := strings.SplitN(fields["Credential"], "/", 2)
	if len(scope) != 2 || scope[0] != creds.AccessKey {
		return "InvalidAccessKeyId", "the access key is not known to this store"
	}
	// scope[1] is date/region/service/aws4_request: the client's region is accepted as it is.
	scopeParts := strings.Split(scope[1], "/")
	if len(scopeParts) != 4 || scopeParts[3] != "aws4_request" {
		return "AuthorizationHeaderMalformed", "bad credential scope"
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" || !strings.HasPrefix(amzDate, scopeParts[0]) {
		return "AccessDenied", "x-amz-date is missing or outside the credential scope"
	}
	signedHeaders := strings.Split(fields["SignedHeaders"], ";")
	key := signingKey(creds.SecretKey, scopeParts[0], scopeParts[1], scopeParts[2])
	want, err := hex.DecodeString(fields["Signature"])
	if err != nil {
		return "AuthorizationHeaderMalformed", "the signature is not hex"
	}
	rawPath, _, _ := strings.Cut(r.RequestURI, "?")
	// SDKs sign the path they send; a client that sends a character raw while signing its
	// percent-encoding is accepted too (the canonical form).
	for _, path := range []string{rawPath, canonicalPath(r.URL.Path)} {
		canonical := strings.Join([]string{
			r.Method, path, canonicalQuery(r.URL.RawQuery), canonicalHeaders(r, signedHeaders),
			strings.Join(signedHeaders, ";"), r.Header.Get("X-Amz-Content-Sha256"),
		}, "\n")
		digest := sha256.Sum256([]byte(canonical))
		toSign := strings.Join([]string{algorithm, amzDate, scope[1], hex.EncodeToString(digest[:])}, "\n")
		if hmac.Equal(hmacSHA256(key, toSign), want) {
			return "", ""
		}
	}
	return "SignatureDoesNotMatch", "the request signature does not match"
}

func hmacSHA256(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}

func signingKey(secret, date, region, service string) []byte {
	key := hmacSHA256([]byte("AWS4"+secret), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	return hmacSHA256(key, "aws4_request")
}

// awsEscape percent-encodes every byte but the unreserved ones (RFC 3986), as SigV4 requires.
func awsEscape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		unreserved := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
		if unreserved || keepSlash && c == '/' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func canonicalPath(path string) string {
	if path == "" {
		return "/"
	}
	return awsEscape(path, true)
}

// canonicalQuery: every parameter decoded then re-encoded, sorted by name then value; a
// parameter without a value ("?uploads") is "uploads=".
func canonicalQuery(raw string) string {
	var pairs []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name, _ = url.QueryUnescape(name)
		value, _ = url.QueryUnescape(value)
		pairs = append(pairs, awsEscape(name, false)+"="+awsEscape(value, false))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func canonicalHeaders(r *http.Request, names []string) string {
	var b strings.Builder
	for _, name := range names {
		var values []string
		switch name {
		case "host": // net/http moves Host out of the header map
			values = []string{r.Host}
		case "content-length":
			values = append([]string(nil), r.Header.Values("Content-Length")...)
			if len(values) == 0 {
				values = []string{fmt.Sprint(r.ContentLength)}
			}
		default: // a copy: the slice Values returns is the request's own
			values = append([]string(nil), r.Header.Values(name)...)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	return b.String()
}
