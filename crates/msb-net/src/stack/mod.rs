//! The stack itself: frames from QEMU's stream socket into smoltcp, guest flows relayed over
//! host sockets once the policy allows them, published ports relayed in.
