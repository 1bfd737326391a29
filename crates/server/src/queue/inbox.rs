//! A queue's inbox: the commands from its handles, and the room item
//! commands need in it.
//!
//! The channel itself is unbounded; a FIFO semaphore of [`INBOX_ROOM`]
//! permits bounds the item commands in it. A submitter takes a permit
//! before sending; the actor counts the item commands it takes and gives
//! their permits back in bulk, once per turn, instead of one by one (a
//! bounded channel would take a lock for every item). Control commands need
//! no room and never wait.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::command::Command;

/// Item commands that may wait in a queue's inbox; beyond it submitters
/// wait their turn, first come first served (backpressure), they are not
/// refused.
pub(super) const INBOX_ROOM: usize = 128;

/// The room in a queue's inbox, closed when the actor ends in any way (even
/// dropped without being run), so no submitter waits for room forever.
#[derive(Debug)]
pub(super) struct Room(pub(super) Arc<Semaphore>);

impl Drop for Room {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The actor's end of the inbox.
#[derive(Debug)]
pub(super) struct Inbox {
    /// Commands from the queue's handles.
    commands: mpsc::UnboundedReceiver<Command>,
    /// The room item commands take.
    room: Room,
    /// Item commands taken since the room was last given back.
    taken_items: usize,
    /// False once every handle is gone and the channel is empty.
    open: bool,
}

impl Inbox {
    /// The actor's end of `commands`, whose item commands hold `room`.
    pub(super) fn new(commands: mpsc::UnboundedReceiver<Command>, room: Arc<Semaphore>) -> Self {
        Self {
            commands,
            room: Room(room),
            taken_items: 0,
            open: true,
        }
    }

    /// Whether a command may still come.
    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    /// The next command; `None` (and closed from then on) once every
    /// handle is gone.
    pub(super) async fn recv(&mut self) -> Option<Command> {
        let command = self.commands.recv().await;
        self.open = command.is_some();
        self.count(command.as_ref());
        command
    }

    /// A command that is already waiting, if any.
    pub(super) fn try_recv(&mut self) -> Option<Command> {
        let command = self.commands.try_recv().ok();
        self.count(command.as_ref());
        command
    }

    fn count(&mut self, command: Option<&Command>) {
        if matches!(command, Some(Command::Submit(_) | Command::SubmitMany(_))) {
            self.taken_items += 1;
        }
    }

    /// Gives the room of the item commands taken back to submitters, in
    /// one go.
    pub(super) fn give_back_room(&mut self) {
        if self.taken_items > 0 {
            self.room.0.add_permits(self.taken_items);
            self.taken_items = 0;
        }
    }

    /// Closes the inbox and returns the commands still in it. Submitters
    /// still waiting for room are refused when the room closes, with the
    /// actor.
    pub(super) fn close(&mut self) -> Vec<Command> {
        self.open = false;
        self.commands.close();
        std::iter::from_fn(|| self.commands.try_recv().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn item_commands_take_room_and_get_it_back_in_bulk() {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(2));
        let mut inbox = Inbox::new(rx, room.clone());
        for _ in 0..2 {
            room.acquire().await.unwrap().forget();
            tx.send(Command::SubmitMany(Vec::new())).unwrap();
        }
        tx.send(Command::Pause).unwrap();
        assert_eq!(room.available_permits(), 0);
        assert!(matches!(inbox.recv().await, Some(Command::SubmitMany(_))));
        assert!(matches!(inbox.try_recv(), Some(Command::SubmitMany(_))));
        assert!(matches!(inbox.try_recv(), Some(Command::Pause)));
        assert_eq!(room.available_permits(), 0, "given back only when asked");
        inbox.give_back_room();
        assert_eq!(
            room.available_permits(),
            2,
            "two item commands, one control"
        );
    }

    #[tokio::test]
    async fn closing_returns_what_is_left_and_dropping_closes_the_room() {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(1));
        let mut inbox = Inbox::new(rx, room.clone());
        tx.send(Command::Resume).unwrap();
        assert_eq!(inbox.close().len(), 1);
        assert!(!inbox.is_open());
        assert!(tx.send(Command::Pause).is_err());
        drop(inbox);
        assert!(
            room.acquire().await.is_err(),
            "waiting submitters are refused"
        );
    }
}
