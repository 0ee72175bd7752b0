// Command kube-network-policies runs SIG Network's NetworkPolicy enforcer (sigs.k8s.io/kube-network-policies) as a
// process on the node against a kubeconfig, enforcing only the NetworkPolicies of one namespace, so that a test can
// enforce its own release's policies on a cluster that other tests share (a harness, not the product).
//
// Upstream's command reads the in-cluster service account and enforces every namespace's policies; this one takes
// --kubeconfig and --namespace, steers packets to the controller's queue itself (steer.go), and removes its nftables
// table on SIGTERM as well as on SIGINT, before the controller stops reading the queue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kube-network-policies:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	namespace := flag.String("namespace", "", "the only namespace whose NetworkPolicies are enforced (required)")
	nodeName := flag.String("node-name", "", "name of the Node this process enforces for, as the kubelet registered it (required)")
	queueID := flag.Uint("nfqueue-id", 100, "number of the NFQUEUE the packets are evaluated from")
	table := flag.String("table-name", "form-data-network-policies", "name of the nftables table (family ip) it owns")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()
	if *namespace == "" || *nodeName == "" {
		return errors.New("--namespace and --node-name are required")
	}
	if *queueID > 65535 {
		return fmt.Errorf("--nfqueue-id %d is not a 16-bit number", *queueID)
	}

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %q: %w", *kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("creating the client: %w", err)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	controllerCtx, stopController := context.WithCancel(context.Background())
	defer stopController()

	// Pods and namespaces of the whole cluster, so peers in other namespaces are matched by their labels;
	// NetworkPolicies and the pods steered to the queue of the one namespace only.
	cluster := informers.NewSharedInformerFactory(client, 0)
	scoped := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(*namespace))
	scopedPods := scoped.Core().V1().Pods()
	controller, err := networkpolicy.NewController(client,
		scoped.Networking().V1().NetworkPolicies(),
		cluster.Core().V1().Namespaces(),
		cluster.Core().V1().Pods(),
		nil, nil, nil, nil,
		networkpolicy.Config{
			QueueID:  int(*queueID),
			NodeName: *nodeName,
			// The controller's own nftables table; on a kernel without CONFIG_NFT_QUEUE it is refused and never made.
			NFTableName: *table + "-upstream",
			// Kernels from 6.12 on carry the conntrack fix this works around.
			NetfilterBug1766Fix: false,
		})
	if err != nil {
		return fmt.Errorf("creating the controller: %w", err)
	}
	steer := &steering{table: *table, nodeName: *nodeName, queueID: uint16(*queueID),
		pods: scopedPods.Lister().Pods(*namespace)} // the lister registers the informer before the factory starts
	// stopped closes once Run returned (with runErr), after it removed the controller's own table.
	var runErr error
	stopped := make(chan struct{})
	go func() { runErr = controller.Run(controllerCtx); close(stopped) }()
	stop := func() error { stopController(); <-stopped; return runErr }
	cluster.Start(controllerCtx.Done())
	scoped.Start(controllerCtx.Done())

	if err := waitReady(ctx, stopped, scopedPods.Informer().HasSynced, uint16(*queueID)); err != nil {
		return errors.Join(err, stop())
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := scopedPods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return errors.Join(fmt.Errorf("watching pods: %w", err), stop())
	}
	if err := steer.sync(); err != nil {
		return errors.Join(err, steer.remove(), stop())
	}
	steering := make(chan struct{})
	go func() { steer.run(ctx, changed); close(steering) }()
	klog.InfoS("enforcing", "namespace", *namespace, "node", *nodeName, "table", "ip "+*table, "queue", *queueID)

	select {
	case <-stopped:
		err = runErr
		if err == nil {
			err = errors.New("the controller stopped")
		}
	case <-ctx.Done():
	}
	cancel()
	<-steering // no sync after the removal
	// The table goes first, so no packet is queued once nobody reads the queue.
	return errors.Join(err, steer.remove(), stop())
}

// waitReady returns once the namespace's pods are listed and the controller reads its queue.
func waitReady(ctx context.Context, stopped <-chan struct{}, synced cache.InformerSynced, queueID uint16) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if synced() {
			listening, err := queueListening(queueID)
			if err != nil {
				return err
			}
			if listening {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errors.New("the controller stopped before it read its queue")
		case <-tick.C:
		}
	}
}
