"""The Docker-free local stack: runs ``template.yaml`` on one machine, bound to 127.0.0.1."""
