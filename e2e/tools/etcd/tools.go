//go:build tools

// Package etcd records the etcd main package built by `make e2e-tools`.
package etcd

import _ "go.etcd.io/etcd/server/v3"
