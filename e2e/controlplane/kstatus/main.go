// kstatus prints the status that sigs.k8s.io/cli-utils' kstatus (the library Flux uses to
// wait for resources) computes for each JSON object read from standard input, one
// "<Status>\t<message>" line per object. The e2e suite uses it to check that VideoTenant
// status means what GitOps tools think it means.
package main

import (
	"bufio"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		// apimachinery's json keeps integers as int64, as unstructured objects expect.
		var obj map[string]interface{}
		if err := json.Unmarshal(in.Bytes(), &obj); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading object:", err)
			os.Exit(2)
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		fmt.Printf("%s\t%s\n", res.Status, res.Message)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading input:", err)
		os.Exit(2)
	}
}
