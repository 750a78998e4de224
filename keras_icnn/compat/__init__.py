"""Version-bounded upstream fixes and checks, each citing its upstream issue: the Keras 3
multi-worker ``fit`` fix (:mod:`.multi_worker`, keras-team/keras#20585) and the oneDNN 1x1
strided-conv check (:mod:`.onednn`, uxlfoundation/oneDNN#6035)."""
