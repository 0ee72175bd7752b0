package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

// steering sends the first packet of each connection from or to a pod of the namespace on this node to the NFQUEUE
// the controller reads. Upstream's controller programs the same with nftables' own queue expression, which needs a
// kernel with CONFIG_NFT_QUEUE; this uses the xtables NFQUEUE target through nft_compat (CONFIG_NFT_COMPAT and
// CONFIG_NETFILTER_XT_TARGET_NFQUEUE) in a table of family ip, so it also runs on kernels built without it.
type steering struct {
	table    string
	nodeName string
	queueID  uint16
	pods     corelisters.PodNamespaceLister
}

// localPodIPs are the IPv4 addresses of the namespace's pods on this node, host-network pods excepted.
func (s *steering) localPodIPs() ([]nftables.SetElement, error) {
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var elements []nftables.SetElement
	for _, pod := range pods {
		if pod.Spec.NodeName != s.nodeName || pod.Spec.HostNetwork || pod.Status.Phase == v1.PodSucceeded ||
			pod.Status.Phase == v1.PodFailed {
			continue
		}
		for _, ip := range pod.Status.PodIPs {
			if addr, err := netip.ParseAddr(ip.IP); err == nil && addr.Is4() {
				elements = append(elements, nftables.SetElement{Key: addr.AsSlice()})
			}
		}
	}
	return elements, nil
}

// nfqueueTarget is the xtables NFQUEUE target, revision 3 (struct xt_NFQ_info_v3: queuenum, queues_total, flags),
// without the bypass flag: while the table exists and nobody reads the queue, the namespace's new connections drop.
func (s *steering) nfqueueTarget() *expr.Target {
	info := make([]byte, 6)
	binary.NativeEndian.PutUint16(info[0:], s.queueID)
	binary.NativeEndian.PutUint16(info[2:], 1)
	unknown := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &unknown}
}

// sync replaces the table in one transaction: a set of the pods' addresses; a postrouting chain (before source NAT,
// after kube-proxy's destination NAT) that accepts established flows and the node's own root traffic (the kubelet's
// probes), as upstream's does, and queues the rest from or to the set; and an input chain queueing new connections
// from the set to the node itself (here the cluster DNS and the tests' services), which never pass postrouting, so
// that egress rules apply to them as a cloud CNI applies them.
func (s *steering) sync() error {
	elements, err := s.localPodIPs()
	if err != nil {
		return err
	}
	conn, table, err := s.deleteTable()
	if err != nil {
		return err
	}
	conn.AddTable(table)
	set := &nftables.Set{Table: table, Name: "pods", KeyType: nftables.TypeIPAddr}
	if err := conn.AddSet(set, elements); err != nil {
		return fmt.Errorf("adding the set: %w", err)
	}
	chain := conn.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATSource - 5),
	})
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	established := binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	rules := [][]expr.Any{
		{ // ct state established,related accept
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: established, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			accept,
		},
		{ // meta skuid 0 accept
			&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
			accept,
		},
	}
	for _, offset := range []uint32{12, 16} { // ip saddr @pods, ip daddr @pods
		rules = append(rules, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			s.nfqueueTarget(),
		})
	}
	for _, exprs := range rules {
		conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	input := conn.AddChain(&nftables.Chain{
		Name:     "input",
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityFilter,
	})
	for _, exprs := range [][]expr.Any{rules[0], rules[2]} { // established accept, ip saddr @pods queue
		conn.AddRule(&nftables.Rule{Table: table, Chain: input, Exprs: exprs})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("writing nftables table ip %s: %w", s.table, err)
	}
	klog.V(2).InfoS("steering", "table", s.table, "pods", len(elements))
	return nil
}

// deleteTable opens a transaction that starts by deleting the table (added first, so that a table already gone is
// not an error); the caller adds to it and flushes.
func (s *steering) deleteTable() (*nftables.Conn, *nftables.Table, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("opening nftables: %w", err)
	}
	table := &nftables.Table{Name: s.table, Family: nftables.TableFamilyIPv4}
	conn.AddTable(table)
	conn.DelTable(table)
	return conn, table, nil
}

// remove deletes the table; a table already gone is not an error.
func (s *steering) remove() error {
	conn, _, err := s.deleteTable()
	if err != nil {
		return err
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("deleting nftables table ip %s: %w", s.table, err)
	}
	return nil
}

// run syncs on every signal of changed until ctx ends, retrying a failed sync each second.
func (s *steering) run(ctx context.Context, changed <-chan struct{}) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry.C:
			if !failed {
				continue
			}
		}
		err := s.sync()
		failed = err != nil
		if failed {
			klog.ErrorS(err, "steering packets to the queue")
		}
	}
}

// queueListening reports whether a process reads NFQUEUE id (a line of /proc/net/netfilter/nfnetlink_queue).
func queueListening(id uint16) (bool, error) {
	data, err := os.ReadFile("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return false, fmt.Errorf("reading the kernel's NFQUEUE listeners: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[0] == strconv.Itoa(int(id)) {
			return true, nil
		}
	}
	return false, nil
}
