//! Tests of the policy parser, the labels, the decision rules, properties and a simulation.
