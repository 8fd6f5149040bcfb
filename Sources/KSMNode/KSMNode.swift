// KSMNode
