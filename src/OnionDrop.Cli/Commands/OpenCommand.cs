using System.Collections.Concurrent;
using System.CommandLine;
using System.Runtime.InteropServices;
using OnionDrop.Files;
using OnionDrop.Sealing;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop open --key FILE [-o DIR] BLOB...`: opens sealed blobs offline. Each blob becomes a folder in DIR
/// (named from its reference), complete and verified or not at all. One stderr line per refused blob.
/// </summary>
public static class OpenCommand
{
    public static Command Create()
    {
        var keyFile = new Option<string>("--key", "-k") { Description = "Your secret key file (from oniondrop keygen)", Required = true, HelpName = "FILE" };
        var output = new Option<string>("--output", "-o") { Description = "Directory to open into", HelpName = "DIR", DefaultValueFactory = _ => "." };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "Passphrase of a protected key, for scripts (or ONIONDROP_PASSPHRASE); else it is asked at the terminal", HelpName = "FILE" };
        var blobs = new Argument<string[]>("BLOB") { Description = "Sealed files (*.sealed) to open", Arity = ArgumentArity.OneOrMore };
        var command = new Command("open", "Open sealed submissions with your secret key, verifying every byte before anything appears. One already opened in the output directory is skipped.")
        {
            keyFile, output, passphraseFile, blobs,
        };
        command.SetAction(parseResult =>
        {
            if (SecretKeyFile.Load("open", parseResult.GetValue(keyFile)!, parseResult.GetValue(passphraseFile)) is not { } key) return 2;
            using (key)
            {
                var outputDirectory = parseResult.GetValue(output)!;
                var madeDirectory = !Directory.Exists(outputDirectory);
                if (OutputDirectory.CannotWriteTo(outputDirectory) is { } why)
                {
                    Console.Error.WriteLine($"oniondrop open: {outputDirectory}: {why}");
                    return 2;
                }
                if (OutputDirectory.KeepsNoModesWarning(outputDirectory) is { } exposed) Console.Error.WriteLine("oniondrop open: " + exposed);
                // Ctrl-C or SIGTERM (a shutdown): stop between chunks, delete the working folders (unverified
                // plaintext) and say so. The runtime's default ended the process at once, leaving them behind, silent.
                using var interrupted = new CancellationTokenSource();
                void Interrupt(PosixSignalContext context) { context.Cancel = true; interrupted.Cancel(); }
                using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
                using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
                var paths = parseResult.GetValue(blobs)!;
                var (refused, notReached) = OpenAll(paths, key, outputDirectory, interrupted.Token);
                // A run that opened nothing leaves no empty folder of its own making (one that was there stays).
                if (madeDirectory) OutputDirectory.RemoveIfEmpty(outputDirectory);
                // The renames into view are durable before we say so (one directory fsync for every blob).
                if (Directory.Exists(outputDirectory)) FileSync.Fsync(outputDirectory);
                if (notReached > 0)
                {
                    Console.Error.WriteLine($"oniondrop open: interrupted: {notReached} of {paths.Length} blob(s) not opened, nothing of them left in {outputDirectory}; run it again to open them");
                    return 130;
                }
                return refused == 0 ? 0 : 1;
            }
        });
        return command;
    }

    /// <summary>Verified blobs waiting to be published: bounds the unpublished plaintext when the disk is slower than the CPU.</summary>
    private const int MaxWaitingToPublish = 8;

    /// <summary>
    /// The memory those may hold (<see cref="VerifiedSubmission.HeldBytes"/>: names and messages, a few KB for most).
    /// One that would take them past it is published by its verifier instead: a valid submission may carry 64 MiB of
    /// names, and eight such waiting took gigabytes.
    /// </summary>
    private const long MaxWaitingBytes = 16 << 20;

    /// <summary>Publishers: enough fsyncs in flight for the file system to share its journal commits among them.</summary>
    private const int Publishers = 4;

    /// <summary>
    /// Blobs are independent. One worker per core decrypts and verifies them, each into its hidden working folder;
    /// a few publishers then make each durable and rename it into view, so the disk's fsync latency hides behind
    /// the CPU's work. Fixed threads, not one per blob: starting a thread costs about as much as opening a small
    /// blob. Lines come out in the blobs' order. A terminal shows a blob's progress only when there is one blob.
    /// </summary>
    /// <returns>the number of blobs refused or not written, and of those left unopened by an interruption</returns>
    private static (int Refused, int NotReached) OpenAll(string[] paths, JournalistKey key, string outputDirectory, CancellationToken interrupted)
    {
        // What each blob came to, in a few words: the submissions themselves (their names and messages) are let go
        // once published, not kept until the last blob is reported.
        var outcomes = paths.Select(_ => new TaskCompletionSource<Opened>()).ToArray();
        using var verified = new BlockingCollection<(int Index, VerifiedSubmission Submission, long Held)>(MaxWaitingToPublish);
        long waitingBytes = 0;
        var showProgress = paths.Length == 1 && !Console.IsErrorRedirected;
        int next = -1, verifying = Math.Min(Environment.ProcessorCount, paths.Length);

        void Publish(int i, VerifiedSubmission submission)
        {
            using (submission)
            {
                if (interrupted.IsCancellationRequested) { outcomes[i].SetCanceled(interrupted); return; } // disposed: deleted
                try { outcomes[i].SetResult(Opened.From(submission.Publish())); }
                catch (Exception e) { outcomes[i].SetException(e); }
            }
        }

        var threads = StartThreads(verifying, "oniondrop open: verify", () =>
        {
            for (int i; (i = Interlocked.Increment(ref next)) < paths.Length;)
            {
                if (interrupted.IsCancellationRequested) { outcomes[i].SetCanceled(interrupted); continue; }
                VerifiedSubmission submission;
                try { submission = VerifyOne(paths[i], key, outputDirectory, showProgress, interrupted); }
                catch (Exception e) { outcomes[i].SetException(e); continue; }
                var held = submission.HeldBytes;
                if (Interlocked.Add(ref waitingBytes, held) <= MaxWaitingBytes) verified.Add((i, submission, held));
                else
                {
                    Interlocked.Add(ref waitingBytes, -held);
                    Publish(i, submission);
                    // Its names are garbage now: left to the GC they stayed (in its oldest generation, collected
                    // seldom) until two or three such blobs' worth had piled up.
                    GC.Collect();
                }
            }
            if (Interlocked.Decrement(ref verifying) == 0) verified.CompleteAdding();
        }).Concat(StartThreads(Publishers, "oniondrop open: publish", () =>
        {
            foreach (var (i, submission, held) in verified.GetConsumingEnumerable())
            {
                Publish(i, submission);
                Interlocked.Add(ref waitingBytes, -held);
            }
        })).ToArray();

        int refused = 0, notReached = 0;
        for (var i = 0; i < paths.Length; i++)
        {
            if (IsInterrupted(outcomes[i].Task)) notReached++;
            else refused += Report(paths[i], outcomes[i].Task);
        }
        foreach (var t in threads) t.Join();
        return (refused, notReached);
    }

    /// <summary>What the report says of an opened blob.</summary>
    private sealed record Opened(int Files, bool HasMessage, string Directory, bool AlreadyOpened)
    {
        public static Opened From(OpenedSubmission s) => new(s.Files.Count, !string.IsNullOrWhiteSpace(s.Message), s.Directory, s.AlreadyOpened);
    }

    private static bool IsInterrupted(Task<Opened> outcome)
    {
        try { outcome.Wait(); return false; }
        catch (AggregateException e) { return e.InnerException is OperationCanceledException; }
    }

    private static IEnumerable<Thread> StartThreads(int count, string name, Action work) =>
        Enumerable.Range(0, count).Select(_ =>
        {
            var thread = new Thread(() => work()) { IsBackground = true, Name = name };
            thread.Start();
            return thread;
        }).ToArray();

    private static VerifiedSubmission VerifyOne(string blob, JournalistKey key, string outputDirectory, bool showProgress, CancellationToken interrupted)
    {
        // Opening a directory says "Access to the path is denied", which sends the journalist to chmod.
        if (Directory.Exists(blob)) throw new IOException($"is a directory, not a sealed file (did you mean {Path.Combine(blob, "*.sealed")}?)");
        using var input = OpenBlob(blob);
        var progress = showProgress ? new TerminalProgress(blob, input.Length) : null;
        // Checked at each chunk: an interruption ends the verification, which deletes its working folder.
        var checkedProgress = new Progress(read => { interrupted.ThrowIfCancellationRequested(); progress?.Report(read); });
        try { return SubmissionOpener.Verify(input, key, outputDirectory, Path.GetFileName(blob), checkedProgress); }
        finally { progress?.Done(); }
    }

    private static FileStream OpenBlob(string blob)
    {
        try { return new FileStream(blob, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Not .NET's "Could not find file '...'.". A shell glob that matched nothing comes as itself (`inbox/*.sealed`).
            throw new IOException(blob.AsSpan().IndexOfAny("*?[") >= 0 ? "no such file (a pattern that matched nothing: is the folder empty?)" : "no such file");
        }
    }

    /// <returns>1 if the blob was refused or could not be written (said on stderr in one line), else 0</returns>
    private static int Report(string blob, Task<Opened> outcome)
    {
        try
        {
            var opened = outcome.GetAwaiter().GetResult();
            if (opened.AlreadyOpened)
            {
                Console.Out.WriteLine($"{blob}: already opened in {opened.Directory}; skipped");
                return 0;
            }
            // message.txt is always written (empty without a message), so that every opened folder looks alike.
            var message = opened.HasMessage ? " and the message" : ", no message,";
            Console.Out.WriteLine($"{blob}: {opened.Files} file(s){message} in {opened.Directory}");
            return 0;
        }
        catch (SealedFormatException e) when (e.Damaged)
        {
            Console.Error.WriteLine($"oniondrop open: {blob}: {OneLine(e.Message)}: {DamagedAdvice}");
            return 1;
        }
        catch (Exception e) when (e is SealedFormatException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"oniondrop open: {blob}: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            // A fault of ours in one blob (a crafted one, say) must not end the run: the others would stay unopened,
            // and their half-written working folders would stay behind.
            Console.Error.WriteLine($"oniondrop open: {blob}: not opened, unexpected error: {OneLine(e.Message)}");
            return 1;
        }
    }

    /// <summary>The next step for a blob whose bytes are not the ones sealed: the copy, not the key, is at fault.</summary>
    private const string DamagedAdvice = "this copy is damaged (fetch it again if the server still has it, or ask a colleague for theirs); nothing of it was opened";

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    /// <summary>Called on the reading thread, at once (System.Progress would post to the thread pool).</summary>
    private sealed class Progress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    /// <summary>"BLOB: 42%" rewritten in place on a terminal, at most once per percent.</summary>
    private sealed class TerminalProgress(string blob, long total) : IProgress<long>
    {
        private int _shown = -1;

        public void Report(long value)
        {
            var percent = total > 0 ? (int)(value * 100 / total) : 100;
            if (percent == _shown) return;
            _shown = percent;
            Console.Error.Write($"\r{blob}: {percent}%");
        }

        public void Done()
        {
            if (_shown >= 0) Console.Error.Write("\r\x1b[K");
        }
    }
}
