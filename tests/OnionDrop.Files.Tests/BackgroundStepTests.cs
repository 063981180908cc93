using OnionDrop.Files;

namespace OnionDrop.Files.Tests;

/// <summary>
/// A <see cref="BackgroundStep"/> is a reusable Task.Run: the work runs on another thread, its outcome comes back
/// once per run (awaited or waited for), and running it again and again allocates nothing.
/// </summary>
public class BackgroundStepTests
{
    [Test]
    public async Task Runs_on_a_pool_thread_and_is_awaited_once_done()
    {
        var caller = Environment.CurrentManagedThreadId;
        int? worker = null;
        var step = new BackgroundStep(() =>
        {
            Thread.Sleep(50);
            worker = Environment.CurrentManagedThreadId;
        });
        step.Start();
        await step.WaitAsync();
        Assert.That(worker, Is.Not.Null.And.Not.EqualTo(caller));
    }

    [Test]
    public void Wait_blocks_until_the_run_is_done()
    {
        var done = false;
        var step = new BackgroundStep(() =>
        {
            Thread.Sleep(50);
            done = true;
        });
        step.Start();
        step.Wait();
        Assert.That(done, Is.True);
    }

    [Test]
    public async Task A_run_that_throws_hands_its_exception_over_once_and_the_step_runs_again()
    {
        var fail = true;
        var runs = 0;
        var step = new BackgroundStep(() =>
        {
            runs++;
            if (fail) throw new IOException("disk gone");
        });

        step.Start();
        Assert.That(async () => await step.WaitAsync(), Throws.TypeOf<IOException>().With.Message.EqualTo("disk gone"));
        step.Start();
        Assert.That(step.Wait, Throws.TypeOf<IOException>());
        Assert.That(step.Wait, Throws.Nothing, "the outcome was taken: nothing is pending any more");

        fail = false;
        step.Start();
        await step.WaitAsync();
        Assert.That(runs, Is.EqualTo(3));
    }

    [Test]
    public void Starting_again_before_the_outcome_is_taken_is_refused()
    {
        using var release = new ManualResetEventSlim();
        var step = new BackgroundStep(() => release.Wait());
        step.Start();
        Assert.That(step.Start, Throws.InvalidOperationException);
        release.Set();
        step.Wait();
        Assert.That(() => { step.Start(); step.Wait(); }, Throws.Nothing);
    }

    [Test]
    public void Nothing_pending_means_nothing_to_wait_for()
    {
        var step = new BackgroundStep(() => Assert.Fail("never started"));
        Assert.That(step.WaitAsync().IsCompletedSuccessfully, Is.True);
        Assert.That(step.Wait, Throws.Nothing);
    }

    [Test]
    public async Task Running_again_and_again_allocates_nothing()
    {
        const int Runs = 2_000;
        long sum = 0;
        var step = new BackgroundStep(() => sum++);
        // The least of several rounds: the runtime itself allocates now and then (a JIT tier, a new pool
        // thread), where Task.Run would allocate in every round. ConfigureAwait(false): NUnit's
        // synchronization context would allocate a post per await (the daemon has none).
        var perRun = double.MaxValue;
        for (var round = 0; round < 6; round++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            for (var i = 0; i < Runs; i++)
            {
                step.Start();
                await step.WaitAsync().ConfigureAwait(false);
                step.Start();
                step.Wait();
            }
            perRun = Math.Min(perRun, (GC.GetTotalAllocatedBytes(precise: true) - before) / (2.0 * Runs));
        }

        Assert.That(sum, Is.EqualTo(6 * 2 * Runs));
        // Task.Run allocates about 150 bytes a run: a task, a delegate and a closure.
        Assert.That(perRun, Is.LessThan(8), $"{perRun:F1} bytes allocated per run");
    }
}
