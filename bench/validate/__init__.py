"""The advisor's predictions against measurements, and the load model's closed forms against its
discrete-event simulation. See bench/README.md."""
