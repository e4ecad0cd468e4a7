// Command etcd is the etcd server of go.etcd.io/etcd/server/v3, as the upstream etcd binary
// starts it (etcd's own main.go calls etcdmain.Main with the process arguments).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
