// Package delay adds a fixed latency to chosen traffic between the
// datacenters of a drill: iptables rules send the packets to an NFQUEUE, and
// Queue lets each one through after the delay. It needs neither the netem
// queueing discipline (which some kernels lack) nor anything inside the
// containers. Linux only.
package delay
