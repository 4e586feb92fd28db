//! Naming a module's parameters by dotted path (`encoder.encoder.layer.0.output.dense.weight`),
//! the key of weight files, optimizer state and parameter groups.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// Tensors by name: shape and f32 values.
pub type TensorMap = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Tracks the dotted path of the parameter being visited or mapped.
#[derive(Default)]
pub struct PathTracker(Vec<String>);

impl PathTracker {
    pub fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }

    pub fn exit(&mut self) {
        self.0.pop();
    }

    pub fn path(&self) -> String {
        self.0.join(".")
    }
}

/// Every float parameter's dotted path.
pub fn param_paths<M: Module>(module: &M) -> HashMap<ParamId, String> {
    struct Paths(PathTracker, HashMap<ParamId, String>);
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.0.enter(name);
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.0.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.insert(param.id, self.0.path());
        }
    }
    let mut v = Paths(PathTracker::default(), HashMap::new());
    module.visit(&mut v);
    v.1
}
