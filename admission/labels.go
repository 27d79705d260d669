package admission

import admissionv1 "k8s.io/api/admission/v1"

// Metric label values derived from a review come from a closed set: the
// request is written by whoever reaches the port, and every distinct label
// value is a series /metrics keeps for the life of the process.

// otherLabel stands for every value outside a closed set.
const otherLabel = "other"

// operationLabel is op if it is an operation of the admission API, else
// "other".
func operationLabel(op admissionv1.Operation) string {
	switch op {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
		return string(op)
	}
	return otherLabel
}

// kindLabel is the request's kind if it is one the gate evaluates (pods and
// the workloads with a pod template, in their API groups), else "other".
func kindLabel(req *admissionv1.AdmissionRequest) string {
	if _, ok := kinds[requestKind(req)]; ok {
		return req.Kind.Kind
	}
	return otherLabel
}
